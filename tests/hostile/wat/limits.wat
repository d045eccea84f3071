;; Pushes the host to each of its limits, as its input says: "OP N M" (the first three numbers of the
;; input, whatever is between them, so both raw bytes and a tool's {"input": "..."} work).
;;   1 N M  log_info N lines of M bytes                         -> the ok answer
;;   2 N M  emit N log events of M-byte messages                -> the ok answer, or the first refusal
;;   3 N M  emit N chunks of M bytes of text                    -> the ok answer, or the first refusal
;;   4 N M  http_fetch N times an ungranted URL with an M-byte path (each refused) -> the ok answer
;;   5 N M  kv_set keys k0..k(N-1) to strings of M bytes         -> the ok answer, or the first refusal
;;   6 N    answer `[` N times then `]` N times (JSON nested N deep)
;;   7 N    answer a tool response with an N-digit integer in it
;;   8 N    emit a request with an array nested N deep in it       -> the host's answer
;;   9 N    emit a progress event whose `done` has N digits        -> the host's answer
;;  10      kv_get key "k0"                                        -> the host's answer
;;  11 N    call_tool `t` with input "6 N" (its answer is nested N deep) -> the host's answer
;;  12 N    call_tool `t` with input "7 N" (its answer has an N-digit integer) -> the host's answer
;;  13      kv_set a key that is a lone UTF-16 surrogate ("\ud800")   -> the host's answer
;;  14      kv_set key "k0" to a string that is a lone surrogate      -> the host's answer
;; "the ok answer" is {"output": "ok", "is_error": false}; "the host's answer" is its JSON as is.
(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "free" (func $free (param i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "log_info" (func $log_info (param i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (import "extism:host/user" "emit" (func $emit (param i64) (result i64)))
  (import "extism:host/user" "http_fetch" (func $http_fetch (param i64) (result i64)))
  (import "extism:host/user" "kv_set" (func $kv_set (param i64) (result i64)))
  (import "extism:host/user" "kv_get" (func $kv_get (param i64) (result i64)))
  (import "extism:host/user" "call_tool" (func $call_tool (param i64) (result i64)))
  (memory (export "memory") 1)
  ;; 0..31: the three numbers of the input (i64 each)
  (data (i32.const 64) "{\"output\": \"ok\", \"is_error\": false}")        ;; 35
  (data (i32.const 128) "{\"type\": \"log\", \"message\": \"")             ;; 28
  (data (i32.const 192) "{\"type\": \"chunk\", \"text\": \"")              ;; 27
  (data (i32.const 256) "\"}")                                            ;; 2
  (data (i32.const 320) "{\"url\": \"http://ungranted.invalid/")          ;; 34
  (data (i32.const 384) "{\"key\": \"k")                                  ;; 10
  (data (i32.const 448) "\", \"value\": \"")                              ;; 13
  (data (i32.const 512) "{\"type\": \"log\", \"message\": \"x\", \"deep\": ") ;; 40
  (data (i32.const 576) "{\"type\": \"progress\", \"total\": 1, \"done\": ") ;; 41
  (data (i32.const 640) "}")                                              ;; 1
  (data (i32.const 704) "{\"key\": \"k0\"}")                              ;; 13
  (data (i32.const 768) "{\"name\": \"t\", \"input\": \"")                ;; 24
  (data (i32.const 832) "{\"output\": \"x\", \"is_error\": false, \"n\": ") ;; 40
  (data (i32.const 896) "{\"key\": \"\\ud800\", \"value\": 1}")           ;; 29
  (data (i32.const 960) "{\"key\": \"k0\", \"value\": \"\\ud800\"}")    ;; 32

  (func $arg (param $k i32) (result i64)
    (i64.load (i32.shl (local.get $k) (i32.const 3))))

  (func $parse
    (local $n i64) (local $i i64) (local $c i32) (local $cur i64) (local $in i32) (local $k i32)
    (local.set $n (call $input_length))
    (block $done (loop $next
      (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
      (local.set $c (call $input_load_u8 (local.get $i)))
      (if (i32.and (i32.ge_u (local.get $c) (i32.const 48)) (i32.le_u (local.get $c) (i32.const 57)))
        (then
          (local.set $cur (i64.add (i64.mul (local.get $cur) (i64.const 10))
                                   (i64.extend_i32_u (i32.sub (local.get $c) (i32.const 48)))))
          (local.set $in (i32.const 1)))
        (else
          (if (local.get $in) (then
            (if (i32.lt_u (local.get $k) (i32.const 3))
              (then (i64.store (i32.shl (local.get $k) (i32.const 3)) (local.get $cur))))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))
            (local.set $cur (i64.const 0))
            (local.set $in (i32.const 0))))))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $next)))
    (if (i32.and (local.get $in) (i32.lt_u (local.get $k) (i32.const 3)))
      (then (i64.store (i32.shl (local.get $k) (i32.const 3)) (local.get $cur)))))

  ;; copy `len` bytes of this module's memory at `src` into block `h` at `pos`; the new position
  (func $put (param $h i64) (param $pos i64) (param $src i32) (param $len i32) (result i64)
    (local $i i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
      (call $store_u8 (i64.add (i64.add (local.get $h) (local.get $pos)) (i64.extend_i32_u (local.get $i)))
        (i32.load8_u (i32.add (local.get $src) (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (i64.add (local.get $pos) (i64.extend_i32_u (local.get $len))))

  ;; `len` copies of `byte` into block `h` at `pos`, eight at a time; the new position
  (func $fill (param $h i64) (param $pos i64) (param $len i64) (param $byte i32) (result i64)
    (local $i i64) (local $word i64)
    (local.set $word (i64.mul (i64.extend_i32_u (local.get $byte)) (i64.const 0x0101010101010101)))
    (block $done (loop $next
      (br_if $done (i64.gt_u (i64.add (local.get $i) (i64.const 8)) (local.get $len)))
      (call $store_u64 (i64.add (i64.add (local.get $h) (local.get $pos)) (local.get $i)) (local.get $word))
      (local.set $i (i64.add (local.get $i) (i64.const 8)))
      (br $next)))
    (block $done (loop $next
      (br_if $done (i64.ge_u (local.get $i) (local.get $len)))
      (call $store_u8 (i64.add (i64.add (local.get $h) (local.get $pos)) (local.get $i)) (local.get $byte))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $next)))
    (i64.add (local.get $pos) (local.get $len)))

  (func $ndigits (param $n i64) (result i64)
    (local $d i64)
    (local.set $d (i64.const 1))
    (block $done (loop $next
      (br_if $done (i64.lt_u (local.get $n) (i64.const 10)))
      (local.set $n (i64.div_u (local.get $n) (i64.const 10)))
      (local.set $d (i64.add (local.get $d) (i64.const 1)))
      (br $next)))
    (local.get $d))

  ;; `n` in decimal into block `h` at `pos`; the new position
  (func $put_num (param $h i64) (param $pos i64) (param $n i64) (result i64)
    (local $end i64) (local $p i64)
    (local.set $end (i64.add (local.get $pos) (call $ndigits (local.get $n))))
    (local.set $p (local.get $end))
    (loop $next
      (local.set $p (i64.sub (local.get $p) (i64.const 1)))
      (call $store_u8 (i64.add (local.get $h) (local.get $p))
        (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $n) (i64.const 10)))))
      (local.set $n (i64.div_u (local.get $n) (i64.const 10)))
      (br_if $next (i64.gt_u (local.get $p) (local.get $pos))))
    (local.get $end))

  ;; 0 emit, 1 http_fetch, 2 kv_set, 3 kv_get, 4 call_tool; the request block is freed after
  (func $host (param $fn i32) (param $h i64) (result i64)
    (local $r i64)
    (block $called
      (if (i32.eq (local.get $fn) (i32.const 0)) (then (local.set $r (call $emit (local.get $h))) (br $called)))
      (if (i32.eq (local.get $fn) (i32.const 1)) (then (local.set $r (call $http_fetch (local.get $h))) (br $called)))
      (if (i32.eq (local.get $fn) (i32.const 2)) (then (local.set $r (call $kv_set (local.get $h))) (br $called)))
      (if (i32.eq (local.get $fn) (i32.const 3)) (then (local.set $r (call $kv_get (local.get $h))) (br $called)))
      (local.set $r (call $call_tool (local.get $h))))
    (call $free (local.get $h))
    (local.get $r))

  ;; a request `pre` + n1 x b1 + n2 x b2 + `post` to host function `fn`; its answer
  (func $shaped (param $fn i32) (param $pre i32) (param $pre_len i32) (param $n1 i64) (param $b1 i32)
                (param $n2 i64) (param $b2 i32) (param $post i32) (param $post_len i32) (result i64)
    (local $h i64) (local $pos i64)
    (local.set $h (call $alloc (i64.add (i64.add (local.get $n1) (local.get $n2))
                                       (i64.extend_i32_u (i32.add (local.get $pre_len) (local.get $post_len))))))
    (local.set $pos (call $put (local.get $h) (i64.const 0) (local.get $pre) (local.get $pre_len)))
    (local.set $pos (call $fill (local.get $h) (local.get $pos) (local.get $n1) (local.get $b1)))
    (local.set $pos (call $fill (local.get $h) (local.get $pos) (local.get $n2) (local.get $b2)))
    (drop (call $put (local.get $h) (local.get $pos) (local.get $post) (local.get $post_len)))
    (call $host (local.get $fn) (local.get $h)))

  (func $answer (param $h i64)
    (call $output_set (local.get $h) (call $length (local.get $h))))

  (func $answer_ok
    (local $h i64)
    (local.set $h (call $alloc (i64.const 35)))
    (drop (call $put (local.get $h) (i64.const 0) (i32.const 64) (i32.const 35)))
    (call $output_set (local.get $h) (i64.const 35)))

  ;; `count` requests from $shaped with n1 = size bytes of 'a'; stops at the first answer other than {}
  (func $repeat (param $fn i32) (param $pre i32) (param $pre_len i32) (param $count i64) (param $size i64)
                (param $stop i32)
    (local $i i64) (local $r i64)
    (block $done (loop $next
      (br_if $done (i64.ge_u (local.get $i) (local.get $count)))
      (local.set $r (call $shaped (local.get $fn) (local.get $pre) (local.get $pre_len) (local.get $size)
                                  (i32.const 97) (i64.const 0) (i32.const 0) (i32.const 256) (i32.const 2)))
      (if (i32.and (local.get $stop) (i64.ne (call $length (local.get $r)) (i64.const 2)))
        (then (call $answer (local.get $r)) (return)))
      (call $free (local.get $r))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $next)))
    (call $answer_ok))

  (func $kv_fill (param $count i64) (param $size i64)
    (local $i i64) (local $h i64) (local $pos i64) (local $r i64)
    (block $done (loop $next
      (br_if $done (i64.ge_u (local.get $i) (local.get $count)))
      (local.set $h (call $alloc (i64.add (i64.add (local.get $size) (call $ndigits (local.get $i))) (i64.const 25))))
      (local.set $pos (call $put (local.get $h) (i64.const 0) (i32.const 384) (i32.const 10)))
      (local.set $pos (call $put_num (local.get $h) (local.get $pos) (local.get $i)))
      (local.set $pos (call $put (local.get $h) (local.get $pos) (i32.const 448) (i32.const 13)))
      (local.set $pos (call $fill (local.get $h) (local.get $pos) (local.get $size) (i32.const 97)))
      (drop (call $put (local.get $h) (local.get $pos) (i32.const 256) (i32.const 2)))
      (local.set $r (call $host (i32.const 2) (local.get $h)))
      (if (i64.ne (call $length (local.get $r)) (i64.const 2)) (then (call $answer (local.get $r)) (return)))
      (call $free (local.get $r))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $next)))
    (call $answer_ok))

  ;; call_tool `t` with input "<op> <n>"
  (func $ask_tool (param $op i32) (param $n i64)
    (local $h i64) (local $pos i64)
    (local.set $h (call $alloc (i64.add (call $ndigits (local.get $n)) (i64.const 28))))
    (local.set $pos (call $put (local.get $h) (i64.const 0) (i32.const 768) (i32.const 24)))
    (local.set $pos (call $fill (local.get $h) (local.get $pos) (i64.const 1) (local.get $op)))
    (local.set $pos (call $fill (local.get $h) (local.get $pos) (i64.const 1) (i32.const 32)))
    (local.set $pos (call $put_num (local.get $h) (local.get $pos) (local.get $n)))
    (drop (call $put (local.get $h) (local.get $pos) (i32.const 256) (i32.const 2)))
    (call $answer (call $host (i32.const 4) (local.get $h))))

  (func (export "call") (result i32)
    (local $op i64) (local $n i64) (local $m i64) (local $h i64) (local $i i64) (local $pos i64)
    (call $parse)
    (local.set $op (call $arg (i32.const 0)))
    (local.set $n (call $arg (i32.const 1)))
    (local.set $m (call $arg (i32.const 2)))
    (if (i64.eq (local.get $op) (i64.const 1)) (then
      (block $done (loop $next
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (local.set $h (call $alloc (local.get $m)))
        (drop (call $fill (local.get $h) (i64.const 0) (local.get $m) (i32.const 97)))
        (call $log_info (local.get $h))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $next)))
      (call $answer_ok)
      (return (i32.const 0))))
    (if (i64.eq (local.get $op) (i64.const 2)) (then
      (call $repeat (i32.const 0) (i32.const 128) (i32.const 28) (local.get $n) (local.get $m) (i32.const 1))
      (return (i32.const 0))))
    (if (i64.eq (local.get $op) (i64.const 3)) (then
      (call $repeat (i32.const 0) (i32.const 192) (i32.const 27) (local.get $n) (local.get $m) (i32.const 1))
      (return (i32.const 0))))
    (if (i64.eq (local.get $op) (i64.const 4)) (then
      (call $repeat (i32.const 1) (i32.const 320) (i32.const 34) (local.get $n) (local.get $m) (i32.const 0))
      (return (i32.const 0))))
    (if (i64.eq (local.get $op) (i64.const 5)) (then
      (call $kv_fill (local.get $n) (local.get $m))
      (return (i32.const 0))))
    (if (i64.eq (local.get $op) (i64.const 6)) (then
      (local.set $h (call $alloc (i64.mul (local.get $n) (i64.const 2))))
      (local.set $pos (call $fill (local.get $h) (i64.const 0) (local.get $n) (i32.const 91)))
      (drop (call $fill (local.get $h) (local.get $pos) (local.get $n) (i32.const 93)))
      (call $output_set (local.get $h) (i64.mul (local.get $n) (i64.const 2)))
      (return (i32.const 0))))
    (if (i64.eq (local.get $op) (i64.const 7)) (then
      (local.set $h (call $alloc (i64.add (local.get $n) (i64.const 41))))
      (local.set $pos (call $put (local.get $h) (i64.const 0) (i32.const 832) (i32.const 40)))
      (local.set $pos (call $fill (local.get $h) (local.get $pos) (local.get $n) (i32.const 49)))
      (drop (call $put (local.get $h) (local.get $pos) (i32.const 640) (i32.const 1)))
      (call $output_set (local.get $h) (i64.add (local.get $n) (i64.const 41)))
      (return (i32.const 0))))
    (if (i64.eq (local.get $op) (i64.const 8)) (then
      (call $answer (call $shaped (i32.const 0) (i32.const 512) (i32.const 40) (local.get $n) (i32.const 91)
                                  (local.get $n) (i32.const 93) (i32.const 640) (i32.const 1)))
      (return (i32.const 0))))
    (if (i64.eq (local.get $op) (i64.const 9)) (then
      (call $answer (call $shaped (i32.const 0) (i32.const 576) (i32.const 41) (local.get $n) (i32.const 49)
                                  (i64.const 0) (i32.const 0) (i32.const 640) (i32.const 1)))
      (return (i32.const 0))))
    (if (i64.eq (local.get $op) (i64.const 10)) (then
      (call $answer (call $shaped (i32.const 3) (i32.const 704) (i32.const 13) (i64.const 0) (i32.const 0)
                                  (i64.const 0) (i32.const 0) (i32.const 640) (i32.const 0)))
      (return (i32.const 0))))
    (if (i64.eq (local.get $op) (i64.const 13)) (then
      (call $answer (call $shaped (i32.const 2) (i32.const 896) (i32.const 29) (i64.const 0) (i32.const 0)
                                  (i64.const 0) (i32.const 0) (i32.const 640) (i32.const 0)))
      (return (i32.const 0))))
    (if (i64.eq (local.get $op) (i64.const 14)) (then
      (call $answer (call $shaped (i32.const 2) (i32.const 960) (i32.const 32) (i64.const 0) (i32.const 0)
                                  (i64.const 0) (i32.const 0) (i32.const 640) (i32.const 0)))
      (return (i32.const 0))))
    (if (i64.eq (local.get $op) (i64.const 11)) (then
      (call $ask_tool (i32.const 54) (local.get $n))
      (return (i32.const 0))))
    (if (i64.eq (local.get $op) (i64.const 12)) (then
      (call $ask_tool (i32.const 55) (local.get $n))
      (return (i32.const 0))))
    (i32.const 1)))
