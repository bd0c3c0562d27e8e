/**
 * Turns one WebDataset member group into a Sample, checking the pairing rules: exactly one image
 * member, a `.cls` holding a decimal class index in range (labeled sets), a parseable `.json`.
 * Every failure is a DataError naming the shard and the key.
 */
import { isImageExt, type MemberGroup } from './tar.js';
import { DataError, type ImageExt, type Sample, type SampleLocation } from './types.js';

export interface GroupRules {
  /** Shard name for messages. */
  shardName: string;
  shard: number;
  /** Require a `.cls` member. */
  labeled: boolean;
  /** Labels must be < numClasses (when given). */
  numClasses?: number;
}

export interface CheckedSample {
  sample: Sample;
  location: SampleLocation;
}

function fail(rules: GroupRules, key: string, what: string): never {
  throw new DataError(`${rules.shardName}: sample "${key}": ${what}`, { shard: rules.shardName, key });
}

/** Parses a `.cls` body: decimal integer text (surrounding whitespace allowed). */
export function parseClassIndex(text: string): number | undefined {
  const t = text.trim();
  return /^\d+$/.test(t) ? Number(t) : undefined;
}

export function checkGroup(group: MemberGroup, rules: GroupRules): CheckedSample {
  const { key, members } = group;
  const images = [...members.keys()].filter(isImageExt);
  if (images.length === 0) {
    const exts = [...members.keys()].map((e) => `.${e}`).join(', ');
    fail(rules, key, `no image member (has ${exts}; expected .png, .jpg, .jpeg or .webp)`);
  }
  if (images.length > 1) fail(rules, key, `several image members (${images.map((e) => `.${e}`).join(', ')})`);
  const ext = images[0] as ImageExt;
  const img = members.get(ext)!;
  if (img.data.length === 0) fail(rules, key, `.${ext} member is empty (0 bytes)`);
  let label: number | undefined;
  const cls = members.get('cls');
  if (cls) {
    label = parseClassIndex(cls.data.toString('utf8'));
    if (label === undefined) fail(rules, key, `.cls is not a class index: ${JSON.stringify(cls.data.toString('utf8').slice(0, 40))}`);
    if (rules.numClasses !== undefined && label >= rules.numClasses) {
      fail(rules, key, `class index ${label} out of range (dataset has ${rules.numClasses} classes: 0..${rules.numClasses - 1})`);
    }
  } else if (rules.labeled) {
    fail(rules, key, `no .cls member (every sample of a labeled dataset needs its class index)`);
  }
  let json: unknown;
  const js = members.get('json');
  if (js) {
    try {
      json = JSON.parse(js.data.toString('utf8'));
    } catch (err) {
      fail(rules, key, `.json member is not valid JSON: ${(err as Error).message}`);
    }
  }
  const sample: Sample = { key, shard: rules.shard, image: img.data, ext };
  if (label !== undefined) sample.label = label;
  if (json !== undefined) sample.json = json;
  const location: SampleLocation = { key, ext, image: [img.offset, img.data.length] };
  if (label !== undefined) location.label = label;
  if (js) location.json = [js.offset, js.data.length];
  return { sample, location };
}
