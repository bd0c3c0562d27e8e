import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger } from '../../pipeline/log/logger.js';
import { lineProgressFactory } from '../../pipeline/log/progress.js';
import { redact, redactText, REDACTED } from '../../pipeline/log/redact.js';
import { formatDuration } from '../../pipeline/log/format.js';

const fixed = () => new Date('2026-01-02T03:04:05.678Z');

test('plain lines carry time, stage, level and fields; JSON lines are parseable', () => {
  const plain: string[] = [];
  const log = createLogger({ write: (l) => plain.push(l), now: fixed }).child({ stage: 'infer-1' });
  log.info('shard done', { shard: 3, rate: 12.3456, note: 'a b' });
  log.warn('slow');
  log.debug('hidden at info level');
  assert.deepEqual(plain, ['03:04:05 [infer-1] shard done shard=3 rate=12.35 note="a b"', '03:04:05 [infer-1] warn: slow']);

  const json: string[] = [];
  const jlog = createLogger({ json: true, level: 'debug', write: (l) => json.push(l), now: fixed }).child({ stage: 's' });
  jlog.debug('d', { n: 1 });
  assert.deepEqual(JSON.parse(json[0]!), { ts: '2026-01-02T03:04:05.678Z', level: 'debug', msg: 'd', stage: 's', n: 1 });
});

test('redaction: env secrets, key ids, URL passwords, presigned params and secret-named fields', (t) => {
  const saved = { s: process.env.AWS_SECRET_ACCESS_KEY, k: process.env.AWS_SESSION_TOKEN };
  process.env.AWS_SECRET_ACCESS_KEY = 'testing';
  process.env.AWS_SESSION_TOKEN = 'FQoGZXIvYXdzEXAMPLETOKEN';
  t.after(() => {
    for (const [k, v] of [['AWS_SECRET_ACCESS_KEY', saved.s], ['AWS_SESSION_TOKEN', saved.k]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
  assert.equal(redactText('key testing, token FQoGZXIvYXdzEXAMPLETOKEN'), `key ${REDACTED}, token ${REDACTED}`);
  assert.equal(redactText('id AKIAIOSFODNN7EXAMPLE here'), `id ${REDACTED} here`);
  assert.equal(redactText('https://me:pa55@host/x'), `https://me:${REDACTED}@host/x`);
  assert.equal(redactText('GET /b/k?X-Amz-Credential=abc&X-Amz-Signature=def&x=1'), `GET /b/k?X-Amz-Credential=${REDACTED}&X-Amz-Signature=${REDACTED}&x=1`);
  const input = { secretAccessKey: 'x', Password: 'y', sessionToken: 'z', accessKeyId: 'w', endpoint: 'http://h', list: [{ authorization: 'Bearer q' }], empty: '' };
  assert.deepEqual(redact(input), {
    secretAccessKey: REDACTED,
    Password: REDACTED,
    sessionToken: REDACTED,
    accessKeyId: REDACTED,
    endpoint: 'http://h',
    list: [{ authorization: REDACTED }],
    empty: '',
  });
  assert.equal(input.secretAccessKey, 'x', 'the input is not modified');
  const err = redact({ e: new Error('bad testing') });
  assert.deepEqual(err, { e: { name: 'Error', message: `bad ${REDACTED}` } });
});

test('plain progress lines report done/total, rate and ETA, and a final line', async () => {
  const lines: string[] = [];
  const log = createLogger({ write: (l) => lines.push(l), now: fixed });
  const p = lineProgressFactory(log, 30)('infer-1 shards', 100, 'shards');
  p.update(10); // e.g. 10 committed before a resume: not counted in the rate
  for (let i = 11; i <= 40; i++) {
    await sleep(2);
    p.update(i, { loss: 0.5 });
  }
  p.stop();
  const periodic = lines.filter((l) => / ETA /.test(l));
  assert.ok(periodic.length >= 1, lines.join('\n'));
  assert.match(periodic[0]!, /^03:04:05 infer-1 shards: \d+\/100 shards \(\d+%\) [\d.]+ shards\/s ETA [\d.]+m?s loss=0\.5000$/);
  assert.match(lines.at(-1)!, /infer-1 shards: 40\/100 shards \(40%\) [\d.]+ shards\/s in \d+ms loss=0\.5000$/);
  // Rate counts only this process's 30 units.
  const rate = Number(/ ([\d.]+) shards\/s in (\d+)ms/.exec(lines.at(-1)!)![1]);
  const ms = Number(/ in (\d+)ms/.exec(lines.at(-1)!)![1]);
  assert.ok(rate <= (30 / ms) * 1000 * 1.5, `rate ${rate} should reflect 30 units in ~${ms} ms, not 40`);
});

test('durations read naturally', () => {
  assert.deepEqual([850, 12_300, 185_000, 3_725_000].map(formatDuration), ['850ms', '12.3s', '3m05s', '1h02m']);
});

test('on a TTY, progress is a live bar with rate and ETA, and log lines print above it', async () => {
  const { Writable } = await import('node:stream');
  const { createCliOutput } = await import('../../pipeline/log/output.js');
  let text = '';
  const tty = Object.assign(
    new Writable({
      write(chunk: Buffer, _enc: BufferEncoding, cb: () => void) {
        text += chunk.toString();
        cb();
      },
    }),
    { isTTY: true, columns: 120, rows: 40 },
  ) as unknown as NodeJS.WriteStream;
  const out = createCliOutput({ stream: tty });
  const p = out.progress('train-teacher-1 steps', 50, 'steps');
  for (let i = 1; i <= 50; i++) {
    p.update(i, { loss: 1 / i });
    if (i === 25) out.log.info('checkpoint written', { step: 25 });
    await sleep(4);
  }
  p.stop();
  out.close();
  // biome-ignore lint/suspicious/noControlCharactersInRegex: strips the terminal's ANSI escape sequences (ESC [)
  const plain = text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
  assert.match(plain, /train-teacher-1 steps \|[█░]+\| +\d+% \d+\/50 steps \| [\d.]+\/s \| ETA [\d.]+m?s loss=/);
  assert.match(plain, /checkpoint written step=25/);
  assert.match(plain, /train-teacher-1 steps: 50\/50 steps in [\d.]+m?s \([\d.]+ steps\/s\)/);
});
