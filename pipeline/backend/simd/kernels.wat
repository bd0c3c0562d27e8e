;; WebAssembly SIMD kernels for training on the tfjs wasm backend (see simd-kernels.ts).
;;
;; They run on the tfjs wasm module's own memory, imported here, so tensors are read and written in
;; place: every pointer is a byte offset into that heap, every count is in elements. Float tensors
;; are NHWC float32 viewed as [rows, c] with the channel innermost.
;;
;; Numerics: element-wise arithmetic is float32 in the order the tfjs kernels they replace use;
;; per-channel sums accumulate in float64, one row after another (a fixed order, so the same inputs
;; always give the same bytes). Functions taking `c` need c % 4 == 0 (the callers check).
;;
;; Assembled with wabt (npm run build:wasm writes kernels-wasm.ts); test/backend/simd-kernels.test.ts
;; checks that the committed bytes are this file's.
(module
  (import "env" "memory" (memory 0))

  ;; acc[0..n) = 0.0 (float64)
  (func $zero_f64 (param $acc i32) (param $n i32)
    (memory.fill (local.get $acc) (i32.const 0) (i32.shl (local.get $n) (i32.const 3))))

  ;; acc[j..j+4) += float64(v[0..4)), acc at byte address $a
  (func $acc4 (param $a i32) (param $v v128)
    (v128.store (local.get $a)
      (f64x2.add (v128.load (local.get $a)) (f64x2.promote_low_f32x4 (local.get $v))))
    (v128.store offset=16 (local.get $a)
      (f64x2.add (v128.load offset=16 (local.get $a))
        (f64x2.promote_low_f32x4
          (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v))))))

  ;; out[j] = float32(acc[j] / d) for j < c
  (func $div_out (param $acc i32) (param $c i32) (param $d f64) (param $out i32)
    (local $j i32)
    (loop $l
      (f32.store
        (i32.add (local.get $out) (i32.shl (local.get $j) (i32.const 2)))
        (f32.demote_f64
          (f64.div (f64.load (i32.add (local.get $acc) (i32.shl (local.get $j) (i32.const 3)))) (local.get $d))))
      (br_if $l (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 1))) (local.get $c)))))

  ;; Batch-norm moments over rows: mean[j] = Σ_r x[r,j] / rows, then
  ;; var[j] = Σ_r (x[r,j] - mean[j])² / rows (two passes, as tf.moments: the subtraction and the
  ;; square in float32, the sums in float64). acc: scratch of c float64.
  (func (export "bn_moments") (param $x i32) (param $rows i32) (param $c i32) (param $mean i32) (param $var i32) (param $acc i32)
    (local $p i32) (local $end i32) (local $j i32) (local $d v128)
    (local.set $end (i32.add (local.get $x) (i32.shl (i32.mul (local.get $rows) (local.get $c)) (i32.const 2))))
    (call $zero_f64 (local.get $acc) (local.get $c))
    (local.set $p (local.get $x))
    (loop $rows1
      (local.set $j (i32.const 0))
      (loop $ch1
        (call $acc4
          (i32.add (local.get $acc) (i32.shl (local.get $j) (i32.const 3)))
          (v128.load (i32.add (local.get $p) (i32.shl (local.get $j) (i32.const 2)))))
        (br_if $ch1 (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 4))) (local.get $c))))
      (br_if $rows1 (i32.lt_u
        (local.tee $p (i32.add (local.get $p) (i32.shl (local.get $c) (i32.const 2))))
        (local.get $end))))
    (call $div_out (local.get $acc) (local.get $c) (f64.convert_i32_u (local.get $rows)) (local.get $mean))

    (call $zero_f64 (local.get $acc) (local.get $c))
    (local.set $p (local.get $x))
    (loop $rows2
      (local.set $j (i32.const 0))
      (loop $ch2
        (local.set $d (f32x4.sub
          (v128.load (i32.add (local.get $p) (i32.shl (local.get $j) (i32.const 2))))
          (v128.load (i32.add (local.get $mean) (i32.shl (local.get $j) (i32.const 2))))))
        (call $acc4
          (i32.add (local.get $acc) (i32.shl (local.get $j) (i32.const 3)))
          (f32x4.mul (local.get $d) (local.get $d)))
        (br_if $ch2 (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 4))) (local.get $c))))
      (br_if $rows2 (i32.lt_u
        (local.tee $p (i32.add (local.get $p) (i32.shl (local.get $c) (i32.const 2))))
        (local.get $end))))
    (call $div_out (local.get $acc) (local.get $c) (f64.convert_i32_u (local.get $rows)) (local.get $var)))

  ;; y[r,j] = (x[r,j] - mean[j]) · a[j] + b[j]   (a = γ·rsqrt(var + ε), b = β)
  (func (export "bn_apply") (param $x i32) (param $rows i32) (param $c i32) (param $mean i32) (param $a i32) (param $b i32) (param $y i32)
    (local $end i32) (local $j i32) (local $jb i32)
    (local.set $end (i32.add (local.get $x) (i32.shl (i32.mul (local.get $rows) (local.get $c)) (i32.const 2))))
    (loop $rows
      (local.set $j (i32.const 0))
      (loop $ch
        (local.set $jb (i32.shl (local.get $j) (i32.const 2)))
        (v128.store (i32.add (local.get $y) (local.get $jb))
          (f32x4.add
            (f32x4.mul
              (f32x4.sub (v128.load (i32.add (local.get $x) (local.get $jb))) (v128.load (i32.add (local.get $mean) (local.get $jb))))
              (v128.load (i32.add (local.get $a) (local.get $jb))))
            (v128.load (i32.add (local.get $b) (local.get $jb)))))
        (br_if $ch (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 4))) (local.get $c))))
      (local.set $y (i32.add (local.get $y) (i32.shl (local.get $c) (i32.const 2))))
      (br_if $rows (i32.lt_u
        (local.tee $x (i32.add (local.get $x) (i32.shl (local.get $c) (i32.const 2))))
        (local.get $end)))))

  ;; Batch-norm gradient sums: acc[j] = Σ_r dy[r,j], acc[c+j] = Σ_r dy[r,j]·(x[r,j] - mean[j])
  ;; (products in float32, sums in float64). acc: scratch of 2c float64.
  (func (export "bn_grad_sums") (param $dy i32) (param $x i32) (param $rows i32) (param $c i32) (param $mean i32) (param $acc i32)
    (local $end i32) (local $j i32) (local $jb i32) (local $g v128) (local $acc2 i32)
    (local.set $end (i32.add (local.get $dy) (i32.shl (i32.mul (local.get $rows) (local.get $c)) (i32.const 2))))
    (local.set $acc2 (i32.add (local.get $acc) (i32.shl (local.get $c) (i32.const 3))))
    (call $zero_f64 (local.get $acc) (i32.shl (local.get $c) (i32.const 1)))
    (loop $rows
      (local.set $j (i32.const 0))
      (loop $ch
        (local.set $jb (i32.shl (local.get $j) (i32.const 2)))
        (local.set $g (v128.load (i32.add (local.get $dy) (local.get $jb))))
        (call $acc4 (i32.add (local.get $acc) (i32.shl (local.get $j) (i32.const 3))) (local.get $g))
        (call $acc4 (i32.add (local.get $acc2) (i32.shl (local.get $j) (i32.const 3)))
          (f32x4.mul (local.get $g)
            (f32x4.sub (v128.load (i32.add (local.get $x) (local.get $jb))) (v128.load (i32.add (local.get $mean) (local.get $jb))))))
        (br_if $ch (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 4))) (local.get $c))))
      (local.set $x (i32.add (local.get $x) (i32.shl (local.get $c) (i32.const 2))))
      (br_if $rows (i32.lt_u
        (local.tee $dy (i32.add (local.get $dy) (i32.shl (local.get $c) (i32.const 2))))
        (local.get $end)))))

  ;; Batch-norm input gradient: dx[r,j] = dy[r,j]·a[j] - b[j] - k[j]·(x[r,j] - mean[j])
  (func (export "bn_grad_dx") (param $dy i32) (param $x i32) (param $rows i32) (param $c i32) (param $mean i32)
        (param $a i32) (param $b i32) (param $k i32) (param $dx i32)
    (local $end i32) (local $j i32) (local $jb i32)
    (local.set $end (i32.add (local.get $dy) (i32.shl (i32.mul (local.get $rows) (local.get $c)) (i32.const 2))))
    (loop $rows
      (local.set $j (i32.const 0))
      (loop $ch
        (local.set $jb (i32.shl (local.get $j) (i32.const 2)))
        (v128.store (i32.add (local.get $dx) (local.get $jb))
          (f32x4.sub
            (f32x4.sub
              (f32x4.mul (v128.load (i32.add (local.get $dy) (local.get $jb))) (v128.load (i32.add (local.get $a) (local.get $jb))))
              (v128.load (i32.add (local.get $b) (local.get $jb))))
            (f32x4.mul
              (v128.load (i32.add (local.get $k) (local.get $jb)))
              (f32x4.sub (v128.load (i32.add (local.get $x) (local.get $jb))) (v128.load (i32.add (local.get $mean) (local.get $jb)))))))
        (br_if $ch (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 4))) (local.get $c))))
      (local.set $x (i32.add (local.get $x) (i32.shl (local.get $c) (i32.const 2))))
      (local.set $dx (i32.add (local.get $dx) (i32.shl (local.get $c) (i32.const 2))))
      (br_if $rows (i32.lt_u
        (local.tee $dy (i32.add (local.get $dy) (i32.shl (local.get $c) (i32.const 2))))
        (local.get $end)))))

  ;; ReLU gradient, as tfjs's dy · step(x): dy·1 where x > 0, dy·0 elsewhere (a signed zero) and
  ;; dy·NaN where x is NaN. step is built as (x > 0 ? 1 : 0) + (x - x), the last term 0 or NaN.
  (func (export "relu_grad") (param $dy i32) (param $x i32) (param $n i32) (param $dx i32)
    (local $end i32) (local $v v128) (local $one v128) (local $s f32)
    (local.set $one (f32x4.splat (f32.const 1)))
    (local.set $end (i32.add (local.get $dy) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (if (i32.lt_u (local.get $dy) (local.get $end))
      (then
        (loop $l
          (local.set $v (v128.load (local.get $x)))
          (v128.store (local.get $dx)
            (f32x4.mul (v128.load (local.get $dy))
              (f32x4.add
                (v128.and (local.get $one) (f32x4.gt (local.get $v) (v128.const f32x4 0 0 0 0)))
                (f32x4.sub (local.get $v) (local.get $v)))))
          (local.set $x (i32.add (local.get $x) (i32.const 16)))
          (local.set $dx (i32.add (local.get $dx) (i32.const 16)))
          (br_if $l (i32.lt_u (local.tee $dy (i32.add (local.get $dy) (i32.const 16))) (local.get $end))))))
    ;; tail: n % 4 elements
    (local.set $end (i32.add (local.get $end) (i32.shl (i32.and (local.get $n) (i32.const 3)) (i32.const 2))))
    (block $done
      (loop $t
        (br_if $done (i32.ge_u (local.get $dy) (local.get $end)))
        (local.set $s (f32.load (local.get $x)))
        (f32.store (local.get $dx)
          (f32.mul (f32.load (local.get $dy))
            (f32.add (select (f32.const 1) (f32.const 0) (f32.gt (local.get $s) (f32.const 0)))
              (f32.sub (local.get $s) (local.get $s)))))
        (local.set $x (i32.add (local.get $x) (i32.const 4)))
        (local.set $dx (i32.add (local.get $dx) (i32.const 4)))
        (local.set $dy (i32.add (local.get $dy) (i32.const 4)))
        (br $t))))

  ;; dst[0..n) = src[0..n) · m   (n any; 4 at a time, then the rest)
  (func $scale_row (param $dst i32) (param $src i32) (param $n i32) (param $m f32)
    (local $end i32) (local $mv v128)
    (local.set $mv (f32x4.splat (local.get $m)))
    (local.set $end (i32.add (local.get $src) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $vdone
      (loop $v
        (br_if $vdone (i32.ge_u (local.get $src) (local.get $end)))
        (v128.store (local.get $dst) (f32x4.mul (v128.load (local.get $src)) (local.get $mv)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (br $v)))
    (local.set $end (i32.add (local.get $end) (i32.shl (i32.and (local.get $n) (i32.const 3)) (i32.const 2))))
    (block $done
      (loop $t
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (f32.store (local.get $dst) (f32.mul (f32.load (local.get $src)) (local.get $m)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
        (local.set $src (i32.add (local.get $src) (i32.const 4)))
        (br $t))))

;; Momentum SGD on one variable, TF1's MomentumOptimizer (see pipeline/train/optimizer.ts):
  ;;   acc = acc·m + g (in place);  wout = w − (g + acc·m)·lr (Nesterov) or w − acc·lr.
  ;; Each operation rounded to float32 in this order, as the tfjs ops (Mul, Add, Sub) the trainer
  ;; used before: the same bits.
  (func (export "momentum_sgd") (param $w i32) (param $wout i32) (param $acc i32) (param $g i32) (param $n i32) (param $lr f32) (param $m f32) (param $nesterov i32)
    (local $end i32) (local $next v128) (local $gv v128) (local $mv v128) (local $lrv v128) (local $s f32) (local $gs f32)
    (local.set $mv (f32x4.splat (local.get $m)))
    (local.set $lrv (f32x4.splat (local.get $lr)))
    (local.set $end (i32.add (local.get $g) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $vdone
      (loop $v
        (br_if $vdone (i32.ge_u (local.get $g) (local.get $end)))
        (local.set $gv (v128.load (local.get $g)))
        (local.set $next (f32x4.add (f32x4.mul (v128.load (local.get $acc)) (local.get $mv)) (local.get $gv)))
        (v128.store (local.get $acc) (local.get $next))
        (v128.store (local.get $wout)
          (f32x4.sub (v128.load (local.get $w))
            (f32x4.mul
              (select (result v128) (f32x4.add (local.get $gv) (f32x4.mul (local.get $next) (local.get $mv))) (local.get $next) (local.get $nesterov))
              (local.get $lrv))))
        (local.set $w (i32.add (local.get $w) (i32.const 16)))
        (local.set $wout (i32.add (local.get $wout) (i32.const 16)))
        (local.set $acc (i32.add (local.get $acc) (i32.const 16)))
        (local.set $g (i32.add (local.get $g) (i32.const 16)))
        (br $v)))
    (local.set $end (i32.add (local.get $end) (i32.shl (i32.and (local.get $n) (i32.const 3)) (i32.const 2))))
    (block $done
      (loop $t
        (br_if $done (i32.ge_u (local.get $g) (local.get $end)))
        (local.set $gs (f32.load (local.get $g)))
        (local.set $s (f32.add (f32.mul (f32.load (local.get $acc)) (local.get $m)) (local.get $gs)))
        (f32.store (local.get $acc) (local.get $s))
        (f32.store (local.get $wout)
          (f32.sub (f32.load (local.get $w))
            (f32.mul
              (select (f32.add (local.get $gs) (f32.mul (local.get $s) (local.get $m))) (local.get $s) (local.get $nesterov))
              (local.get $lr))))
        (local.set $w (i32.add (local.get $w) (i32.const 4)))
        (local.set $wout (i32.add (local.get $wout) (i32.const 4)))
        (local.set $acc (i32.add (local.get $acc) (i32.const 4)))
        (local.set $g (i32.add (local.get $g) (i32.const 4)))
        (br $t))))

  ;; One EMA update of one weight, TF's assign_moving_average form (see pipeline/train/ema.ts):
  ;; sout = s − (s − w)·c with c = 1 − decay, each operation rounded to float32 in this order.
  (func (export "ema_toward") (param $s i32) (param $sout i32) (param $w i32) (param $n i32) (param $c f32)
    (local $end i32) (local $sv v128) (local $cv v128) (local $x f32)
    (local.set $cv (f32x4.splat (local.get $c)))
    (local.set $end (i32.add (local.get $s) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $vdone
      (loop $v
        (br_if $vdone (i32.ge_u (local.get $s) (local.get $end)))
        (local.set $sv (v128.load (local.get $s)))
        (v128.store (local.get $sout) (f32x4.sub (local.get $sv) (f32x4.mul (f32x4.sub (local.get $sv) (v128.load (local.get $w))) (local.get $cv))))
        (local.set $s (i32.add (local.get $s) (i32.const 16)))
        (local.set $sout (i32.add (local.get $sout) (i32.const 16)))
        (local.set $w (i32.add (local.get $w) (i32.const 16)))
        (br $v)))
    (local.set $end (i32.add (local.get $end) (i32.shl (i32.and (local.get $n) (i32.const 3)) (i32.const 2))))
    (block $done
      (loop $t
        (br_if $done (i32.ge_u (local.get $s) (local.get $end)))
        (local.set $x (f32.load (local.get $s)))
        (f32.store (local.get $sout) (f32.sub (local.get $x) (f32.mul (f32.sub (local.get $x) (f32.load (local.get $w))) (local.get $c))))
        (local.set $s (i32.add (local.get $s) (i32.const 4)))
        (local.set $sout (i32.add (local.get $sout) (i32.const 4)))
        (local.set $w (i32.add (local.get $w) (i32.const 4)))
        (br $t))))

  ;; Average-pool gradient for windows that do not overlap (filter = stride = s, no dilation):
  ;; every input pixel lies in exactly one window, oy = (iy + top) / s, so
  ;; dx[b,iy,ix,:] = dy[b,oy,ox,:] · m, or 0 where that window is past the output (valid padding).
  ;; m = 1/(fh·fw) as tfjs's cpu and wasm AvgPoolGrad (the padded part of a window counts).
  (func (export "avg_pool_grad_tiled") (param $dy i32) (param $dx i32) (param $n i32) (param $h i32) (param $w i32) (param $c i32)
        (param $ho i32) (param $wo i32) (param $sh i32) (param $sw i32) (param $top i32) (param $left i32) (param $m f32)
    (local $b i32) (local $iy i32) (local $ix i32) (local $oy i32) (local $ox i32) (local $row i32) (local $dyrow i32)
    (local.set $row (i32.shl (local.get $c) (i32.const 2)))
    (loop $batch
      (local.set $iy (i32.const 0))
      (loop $ys
        (local.set $oy (i32.div_u (i32.add (local.get $iy) (local.get $top)) (local.get $sh)))
        (local.set $ix (i32.const 0))
        (loop $xs
          (local.set $ox (i32.div_u (i32.add (local.get $ix) (local.get $left)) (local.get $sw)))
          (if (i32.and (i32.lt_u (local.get $oy) (local.get $ho)) (i32.lt_u (local.get $ox) (local.get $wo)))
            (then
              (local.set $dyrow (i32.add (local.get $dy)
                (i32.mul (local.get $row)
                  (i32.add (i32.mul (i32.add (i32.mul (local.get $b) (local.get $ho)) (local.get $oy)) (local.get $wo)) (local.get $ox)))))
              (call $scale_row (local.get $dx) (local.get $dyrow) (local.get $c) (local.get $m)))
            (else (memory.fill (local.get $dx) (i32.const 0) (local.get $row))))
          (local.set $dx (i32.add (local.get $dx) (local.get $row)))
          (br_if $xs (i32.lt_u (local.tee $ix (i32.add (local.get $ix) (i32.const 1))) (local.get $w))))
        (br_if $ys (i32.lt_u (local.tee $iy (i32.add (local.get $iy) (i32.const 1))) (local.get $h))))
      (br_if $batch (i32.lt_u (local.tee $b (i32.add (local.get $b) (i32.const 1))) (local.get $n)))))

  ;; Conv filter-gradient micro-kernel: a 4 (input channels) × 8 (output channels) block of
  ;;   dw[i, o] += Σ_(n,y,x) xs[n,y,x][i] · dys[n,y,x][o],   i < 4, o < 8
  ;; over a cn × cy × cx grid of positions; each level has its own byte strides into x and dy, so
  ;; one call covers a tap of a strided, padded conv over several images. The block is summed
  ;; from zero in registers (eight f32x4: rows i, columns o..o+3 and o+4..o+7), position after
  ;; position (f32x4.relaxed_madd: one rounding per multiply-add where the CPU fuses), then added
  ;; to dw (rows `dwrow` bytes apart).
  (func $bpf_block (param $x i32) (param $dy i32) (param $cn i32) (param $cy i32) (param $cx i32)
        (param $xn i32) (param $xy i32) (param $xx i32) (param $dyn i32) (param $dyy i32) (param $dyx i32)
        (param $dw i32) (param $dwrow i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local $a4 v128) (local $a5 v128) (local $a6 v128) (local $a7 v128)
    (local $xv v128) (local $d0 v128) (local $d1 v128) (local $s v128)
    (local $n i32) (local $y i32) (local $i i32) (local $xp i32) (local $dp i32) (local $xr i32) (local $dr i32)
    (loop $images
      (local.set $xr (local.get $x))
      (local.set $dr (local.get $dy))
      (local.set $y (i32.const 0))
      (loop $rows
        (local.set $xp (local.get $xr))
        (local.set $dp (local.get $dr))
        (local.set $i (local.get $cx))
        (loop $cols
          (local.set $xv (v128.load (local.get $xp)))
          (local.set $d0 (v128.load (local.get $dp)))
          (local.set $d1 (v128.load offset=16 (local.get $dp)))
          (local.set $s (i8x16.shuffle 0 1 2 3 0 1 2 3 0 1 2 3 0 1 2 3 (local.get $xv) (local.get $xv)))
          (local.set $a0 (f32x4.relaxed_madd (local.get $s) (local.get $d0) (local.get $a0)))
          (local.set $a1 (f32x4.relaxed_madd (local.get $s) (local.get $d1) (local.get $a1)))
          (local.set $s (i8x16.shuffle 4 5 6 7 4 5 6 7 4 5 6 7 4 5 6 7 (local.get $xv) (local.get $xv)))
          (local.set $a2 (f32x4.relaxed_madd (local.get $s) (local.get $d0) (local.get $a2)))
          (local.set $a3 (f32x4.relaxed_madd (local.get $s) (local.get $d1) (local.get $a3)))
          (local.set $s (i8x16.shuffle 8 9 10 11 8 9 10 11 8 9 10 11 8 9 10 11 (local.get $xv) (local.get $xv)))
          (local.set $a4 (f32x4.relaxed_madd (local.get $s) (local.get $d0) (local.get $a4)))
          (local.set $a5 (f32x4.relaxed_madd (local.get $s) (local.get $d1) (local.get $a5)))
          (local.set $s (i8x16.shuffle 12 13 14 15 12 13 14 15 12 13 14 15 12 13 14 15 (local.get $xv) (local.get $xv)))
          (local.set $a6 (f32x4.relaxed_madd (local.get $s) (local.get $d0) (local.get $a6)))
          (local.set $a7 (f32x4.relaxed_madd (local.get $s) (local.get $d1) (local.get $a7)))
          (local.set $xp (i32.add (local.get $xp) (local.get $xx)))
          (local.set $dp (i32.add (local.get $dp) (local.get $dyx)))
          (br_if $cols (local.tee $i (i32.sub (local.get $i) (i32.const 1)))))
        (local.set $xr (i32.add (local.get $xr) (local.get $xy)))
        (local.set $dr (i32.add (local.get $dr) (local.get $dyy)))
        (br_if $rows (i32.lt_u (local.tee $y (i32.add (local.get $y) (i32.const 1))) (local.get $cy))))
      (local.set $x (i32.add (local.get $x) (local.get $xn)))
      (local.set $dy (i32.add (local.get $dy) (local.get $dyn)))
      (br_if $images (i32.lt_u (local.tee $n (i32.add (local.get $n) (i32.const 1))) (local.get $cn))))
    (v128.store (local.get $dw) (f32x4.add (v128.load (local.get $dw)) (local.get $a0)))
    (v128.store offset=16 (local.get $dw) (f32x4.add (v128.load offset=16 (local.get $dw)) (local.get $a1)))
    (local.set $dw (i32.add (local.get $dw) (local.get $dwrow)))
    (v128.store (local.get $dw) (f32x4.add (v128.load (local.get $dw)) (local.get $a2)))
    (v128.store offset=16 (local.get $dw) (f32x4.add (v128.load offset=16 (local.get $dw)) (local.get $a3)))
    (local.set $dw (i32.add (local.get $dw) (local.get $dwrow)))
    (v128.store (local.get $dw) (f32x4.add (v128.load (local.get $dw)) (local.get $a4)))
    (v128.store offset=16 (local.get $dw) (f32x4.add (v128.load offset=16 (local.get $dw)) (local.get $a5)))
    (local.set $dw (i32.add (local.get $dw) (local.get $dwrow)))
    (v128.store (local.get $dw) (f32x4.add (v128.load (local.get $dw)) (local.get $a6)))
    (v128.store offset=16 (local.get $dw) (f32x4.add (v128.load offset=16 (local.get $dw)) (local.get $a7))))

  ;; One filter tap's contribution over a grid, for every 4×8 block of dw[ci, co] (ci % 4 == 0,
  ;; co % 8 == 0): x, dy point at the grid's first position; dw at the tap's [ci, co] slice.
  (func (export "conv_bpf_tap") (param $x i32) (param $dy i32) (param $cn i32) (param $cy i32) (param $cx i32)
        (param $xn i32) (param $xy i32) (param $xx i32) (param $dyn i32) (param $dyy i32) (param $dyx i32)
        (param $ci i32) (param $co i32) (param $dw i32)
    (local $i i32) (local $o i32) (local $dwrow i32)
    (local.set $dwrow (i32.shl (local.get $co) (i32.const 2)))
    (loop $ib
      (local.set $o (i32.const 0))
      (loop $ob
        (call $bpf_block
          (i32.add (local.get $x) (i32.shl (local.get $i) (i32.const 2)))
          (i32.add (local.get $dy) (i32.shl (local.get $o) (i32.const 2)))
          (local.get $cn) (local.get $cy) (local.get $cx)
          (local.get $xn) (local.get $xy) (local.get $xx) (local.get $dyn) (local.get $dyy) (local.get $dyx)
          (i32.add (local.get $dw) (i32.shl (i32.add (i32.mul (local.get $i) (local.get $co)) (local.get $o)) (i32.const 2)))
          (local.get $dwrow))
        (br_if $ob (i32.lt_u (local.tee $o (i32.add (local.get $o) (i32.const 8))) (local.get $co))))
      (br_if $ib (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 4))) (local.get $ci)))))

;; p[0..8) = v0, v1 (acc = 0) or p[0..8) += v0, v1 (acc = 1)
  (func $put8 (param $p i32) (param $v0 v128) (param $v1 v128) (param $acc i32)
    (if (local.get $acc)
      (then
        (local.set $v0 (f32x4.add (v128.load (local.get $p)) (local.get $v0)))
        (local.set $v1 (f32x4.add (v128.load offset=16 (local.get $p)) (local.get $v1)))))
    (v128.store (local.get $p) (local.get $v0))
    (v128.store offset=16 (local.get $p) (local.get $v1)))

  ;; C[m, n] = A[m, k] · B[k, n], or C += A·B when $acc is 1 (row strides lda, ldb, ldc in bytes;
  ;; n % 8 == 0, k >= 1): blocks of 4 rows × 8 columns summed from zero in registers over k in
  ;; order, then stored (or added to C), rows past the last multiple of 4 one at a time. The conv
  ;; input gradient: A = dy rows, B = a filter tap transposed, C = dx rows (ldc = stride · ci).
  ;; Each step is f32x4.relaxed_madd (a·b + acc): one rounding where the CPU has a fused
  ;; multiply-add (x86-64 with FMA3, ARM64), as in $bpf_block.
  (func $gemm_nn (export "gemm_nn") (param $a i32) (param $lda i32) (param $b i32) (param $ldb i32) (param $c i32) (param $ldc i32)
        (param $m i32) (param $n i32) (param $k i32) (param $acc i32)
    (local $r i32) (local $j i32) (local $t i32) (local $pa i32) (local $pb i32) (local $pc i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local $a4 v128) (local $a5 v128) (local $a6 v128) (local $a7 v128)
    (local $b0 v128) (local $b1 v128) (local $s v128)
    (block $blocks_done
      (loop $blocks
        (br_if $blocks_done (i32.gt_u (i32.add (local.get $r) (i32.const 4)) (local.get $m)))
        (local.set $j (i32.const 0))
        (loop $cols
          (local.set $a0 (v128.const i32x4 0 0 0 0)) (local.set $a1 (v128.const i32x4 0 0 0 0))
          (local.set $a2 (v128.const i32x4 0 0 0 0)) (local.set $a3 (v128.const i32x4 0 0 0 0))
          (local.set $a4 (v128.const i32x4 0 0 0 0)) (local.set $a5 (v128.const i32x4 0 0 0 0))
          (local.set $a6 (v128.const i32x4 0 0 0 0)) (local.set $a7 (v128.const i32x4 0 0 0 0))
          (local.set $pa (i32.add (local.get $a) (i32.mul (local.get $r) (local.get $lda))))
          (local.set $pb (i32.add (local.get $b) (i32.shl (local.get $j) (i32.const 2))))
          (local.set $t (local.get $k))
          (loop $inner
            (local.set $b0 (v128.load (local.get $pb)))
            (local.set $b1 (v128.load offset=16 (local.get $pb)))
            (local.set $s (v128.load32_splat (local.get $pa)))
            (local.set $a0 (f32x4.relaxed_madd (local.get $s) (local.get $b0) (local.get $a0)))
            (local.set $a1 (f32x4.relaxed_madd (local.get $s) (local.get $b1) (local.get $a1)))
            (local.set $s (v128.load32_splat (i32.add (local.get $pa) (local.get $lda))))
            (local.set $a2 (f32x4.relaxed_madd (local.get $s) (local.get $b0) (local.get $a2)))
            (local.set $a3 (f32x4.relaxed_madd (local.get $s) (local.get $b1) (local.get $a3)))
            (local.set $s (v128.load32_splat (i32.add (local.get $pa) (i32.shl (local.get $lda) (i32.const 1)))))
            (local.set $a4 (f32x4.relaxed_madd (local.get $s) (local.get $b0) (local.get $a4)))
            (local.set $a5 (f32x4.relaxed_madd (local.get $s) (local.get $b1) (local.get $a5)))
            (local.set $s (v128.load32_splat (i32.add (local.get $pa) (i32.mul (local.get $lda) (i32.const 3)))))
            (local.set $a6 (f32x4.relaxed_madd (local.get $s) (local.get $b0) (local.get $a6)))
            (local.set $a7 (f32x4.relaxed_madd (local.get $s) (local.get $b1) (local.get $a7)))
            (local.set $pa (i32.add (local.get $pa) (i32.const 4)))
            (local.set $pb (i32.add (local.get $pb) (local.get $ldb)))
            (br_if $inner (local.tee $t (i32.sub (local.get $t) (i32.const 1)))))
          (local.set $pc (i32.add (i32.add (local.get $c) (i32.mul (local.get $r) (local.get $ldc))) (i32.shl (local.get $j) (i32.const 2))))
          (call $put8 (local.get $pc) (local.get $a0) (local.get $a1) (local.get $acc))
          (local.set $pc (i32.add (local.get $pc) (local.get $ldc)))
          (call $put8 (local.get $pc) (local.get $a2) (local.get $a3) (local.get $acc))
          (local.set $pc (i32.add (local.get $pc) (local.get $ldc)))
          (call $put8 (local.get $pc) (local.get $a4) (local.get $a5) (local.get $acc))
          (local.set $pc (i32.add (local.get $pc) (local.get $ldc)))
          (call $put8 (local.get $pc) (local.get $a6) (local.get $a7) (local.get $acc))
          (br_if $cols (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 8))) (local.get $n))))
        (local.set $r (i32.add (local.get $r) (i32.const 4)))
        (br $blocks)))
    ;; the last m % 4 rows
    (block $rows_done
      (loop $rows
        (br_if $rows_done (i32.ge_u (local.get $r) (local.get $m)))
        (local.set $j (i32.const 0))
        (loop $cols1
          (local.set $a0 (v128.const i32x4 0 0 0 0)) (local.set $a1 (v128.const i32x4 0 0 0 0))
          (local.set $pa (i32.add (local.get $a) (i32.mul (local.get $r) (local.get $lda))))
          (local.set $pb (i32.add (local.get $b) (i32.shl (local.get $j) (i32.const 2))))
          (local.set $t (local.get $k))
          (loop $inner1
            (local.set $s (v128.load32_splat (local.get $pa)))
            (local.set $a0 (f32x4.relaxed_madd (local.get $s) (v128.load (local.get $pb)) (local.get $a0)))
            (local.set $a1 (f32x4.relaxed_madd (local.get $s) (v128.load offset=16 (local.get $pb)) (local.get $a1)))
            (local.set $pa (i32.add (local.get $pa) (i32.const 4)))
            (local.set $pb (i32.add (local.get $pb) (local.get $ldb)))
            (br_if $inner1 (local.tee $t (i32.sub (local.get $t) (i32.const 1)))))
          (local.set $pc (i32.add (i32.add (local.get $c) (i32.mul (local.get $r) (local.get $ldc))) (i32.shl (local.get $j) (i32.const 2))))
          (call $put8 (local.get $pc) (local.get $a0) (local.get $a1) (local.get $acc))
          (br_if $cols1 (i32.lt_u (local.tee $j (i32.add (local.get $j) (i32.const 8))) (local.get $n))))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rows))))

;; A convolution as matmuls over filter taps, forward or input gradient. For every image, output
  ;; row y, tap (a, b) whose input row iy = y·sh + a - top is inside, and the run of output columns
  ;; x0..x1 whose input column x·sw + b - left is inside, with `in` rows at input positions
  ;; (s·ci apart along the run) and `out` rows at output positions:
  ;;   forward ($fwd = 1):  out[img, y, x, :] += in[img, iy, x·sw + b - left, :] · taps[a, b]  ([ci, co])
  ;;   input gradient (0): in[img, iy, x·sw + b - left, :] += out[img, y, x, :] · taps[a, b]  ([co, ci])
  ;; The accumulated tensor must be zero. Needs co % 8 == 0 (forward) or ci % 8 == 0 (gradient).
  (func (export "conv_taps") (param $in i32) (param $out i32) (param $taps i32) (param $n i32) (param $h i32) (param $w i32)
        (param $ci i32) (param $ho i32) (param $wo i32) (param $co i32) (param $fh i32) (param $fw i32)
        (param $sh i32) (param $sw i32) (param $top i32) (param $left i32) (param $fwd i32)
    (local $img i32) (local $y i32) (local $a i32) (local $b i32) (local $iy i32) (local $x0 i32) (local $x1 i32)
    (local $outrow i32) (local $inrow i32) (local $cib i32) (local $cob i32) (local $pin i32) (local $pout i32) (local $tap i32)
    (local.set $cib (i32.shl (local.get $ci) (i32.const 2)))
    (local.set $cob (i32.shl (local.get $co) (i32.const 2)))
    (loop $images
      (local.set $y (i32.const 0))
      (loop $rows
        (local.set $outrow (i32.add (local.get $out)
          (i32.mul (i32.mul (i32.add (i32.mul (local.get $img) (local.get $ho)) (local.get $y)) (local.get $wo)) (local.get $cob))))
        (local.set $a (i32.const 0))
        (loop $taprows
          (local.set $iy (i32.sub (i32.add (i32.mul (local.get $y) (local.get $sh)) (local.get $a)) (local.get $top)))
          (if (i32.and (i32.ge_s (local.get $iy) (i32.const 0)) (i32.lt_s (local.get $iy) (local.get $h)))
            (then
              (local.set $inrow (i32.add (local.get $in)
                (i32.mul (i32.mul (i32.add (i32.mul (local.get $img) (local.get $h)) (local.get $iy)) (local.get $w)) (local.get $cib))))
              (local.set $b (i32.const 0))
              (loop $tapcols
                ;; x0 = max(0, ceil((left - b) / sw)), x1 = min(wo - 1, floor((w - 1 + left - b) / sw))
                (local.set $x0 (call $ceil_div_nonneg (i32.sub (local.get $left) (local.get $b)) (local.get $sw)))
                (local.set $x1 (call $floor_div (i32.sub (i32.add (local.get $w) (local.get $left)) (i32.add (local.get $b) (i32.const 1))) (local.get $sw)))
                (if (i32.ge_s (local.get $x1) (local.get $wo)) (then (local.set $x1 (i32.sub (local.get $wo) (i32.const 1)))))
                (if (i32.le_s (local.get $x0) (local.get $x1))
                  (then
                    (local.set $pin (i32.add (local.get $inrow)
                      (i32.mul (i32.sub (i32.add (i32.mul (local.get $x0) (local.get $sw)) (local.get $b)) (local.get $left)) (local.get $cib))))
                    (local.set $pout (i32.add (local.get $outrow) (i32.mul (local.get $x0) (local.get $cob))))
                    (local.set $tap (i32.add (local.get $taps)
                      (i32.mul (i32.add (i32.mul (local.get $a) (local.get $fw)) (local.get $b)) (i32.mul (local.get $ci) (local.get $cob)))))
                    (if (local.get $fwd)
                      (then
                        (call $gemm_nn (local.get $pin) (i32.mul (local.get $sw) (local.get $cib)) (local.get $tap) (local.get $cob)
                          (local.get $pout) (local.get $cob)
                          (i32.add (i32.sub (local.get $x1) (local.get $x0)) (i32.const 1)) (local.get $co) (local.get $ci) (i32.const 1)))
                      (else
                        (call $gemm_nn (local.get $pout) (local.get $cob) (local.get $tap) (local.get $cib)
                          (local.get $pin) (i32.mul (local.get $sw) (local.get $cib))
                          (i32.add (i32.sub (local.get $x1) (local.get $x0)) (i32.const 1)) (local.get $ci) (local.get $co) (i32.const 1))))))
                (br_if $tapcols (i32.lt_u (local.tee $b (i32.add (local.get $b) (i32.const 1))) (local.get $fw))))))
          (br_if $taprows (i32.lt_u (local.tee $a (i32.add (local.get $a) (i32.const 1))) (local.get $fh))))
        (br_if $rows (i32.lt_u (local.tee $y (i32.add (local.get $y) (i32.const 1))) (local.get $ho))))
      (br_if $images (i32.lt_u (local.tee $img (i32.add (local.get $img) (i32.const 1))) (local.get $n)))))

  ;; max(0, ceil(p / q)) for q > 0
  (func $ceil_div_nonneg (param $p i32) (param $q i32) (result i32)
    (if (result i32) (i32.le_s (local.get $p) (i32.const 0))
      (then (i32.const 0))
      (else (i32.div_s (i32.add (local.get $p) (i32.sub (local.get $q) (i32.const 1))) (local.get $q)))))

  ;; floor(p / q) for q > 0 (p may be negative)
  (func $floor_div (param $p i32) (param $q i32) (result i32)
    (if (result i32) (i32.ge_s (local.get $p) (i32.const 0))
      (then (i32.div_s (local.get $p) (local.get $q)))
      (else (i32.sub (i32.const 0) (i32.div_s (i32.add (i32.sub (i32.const 0) (local.get $p)) (i32.sub (local.get $q) (i32.const 1))) (local.get $q))))))
)
