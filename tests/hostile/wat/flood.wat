;; Floods the log: 20,000 info lines of 256 bytes (Extism frees each message, so each is a fresh
;; block), then answers valid tool JSON: the host must keep what it shows and holds bounded.
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "log_info" (func $log_info (param i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"output\": \"flooded\", \"is_error\": false}")
  (func (export "call") (result i32)
    (local $h i64) (local $i i64) (local $j i64) (local $out i64)
    (block $done (loop $log
      (br_if $done (i64.ge_u (local.get $i) (i64.const 20000)))
      (local.set $h (call $alloc (i64.const 256)))
      (local.set $j (i64.const 0))
      (block $filled (loop $fill
        (br_if $filled (i64.ge_u (local.get $j) (i64.const 256)))
        (call $store_u64 (i64.add (local.get $h) (local.get $j)) (i64.const 0x6161616161616161))
        (local.set $j (i64.add (local.get $j) (i64.const 8)))
        (br $fill)))
      (call $log_info (local.get $h))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $log)))
    (local.set $out (call $alloc (i64.const 40)))
    (local.set $i (i64.const 0))
    (block $copied (loop $copy
      (br_if $copied (i64.ge_u (local.get $i) (i64.const 40)))
      (call $store_u8 (i64.add (local.get $out) (local.get $i))
        (i32.load8_u (i32.wrap_i64 (local.get $i))))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $copy)))
    (call $output_set (local.get $out) (i64.const 40))
    (i32.const 0)))
