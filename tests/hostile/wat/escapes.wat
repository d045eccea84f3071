;; Answers and logs terminal escape sequences: an OSC 52 clipboard write, a title change, a screen
;; clear and a C1 CSI. The host must show them as text on a terminal and keep them exact in --json.
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "log_info" (func $log_info (param i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  ;; 0: the answer (JSON escapes: the decoded string holds ESC, BEL and U+009B)
  (data (i32.const 0) "{\"output\":\"A\\u001b]52;c;cHduZWQ=\\u0007B\\u001b[2JC\\u009b31mD\",\"is_error\":false}")
  ;; 256: a log line with raw ESC bytes
  (data (i32.const 256) "log \1b]0;pwned\07 title \1b[2J")
  (func $copy (param $from i32) (param $len i64) (result i64)
    (local $h i64) (local $i i64)
    (local.set $h (call $alloc (local.get $len)))
    (block $done (loop $next
      (br_if $done (i64.ge_u (local.get $i) (local.get $len)))
      (call $store_u8 (i64.add (local.get $h) (local.get $i))
        (i32.load8_u (i32.add (local.get $from) (i32.wrap_i64 (local.get $i)))))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $next)))
    (local.get $h))
  (func (export "call") (result i32)
    (call $log_info (call $copy (i32.const 256) (i64.const 25)))
    (call $output_set (call $copy (i32.const 0) (i64.const 78)) (i64.const 78))
    (i32.const 0)))
