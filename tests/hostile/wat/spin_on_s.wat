;; A tool that loops forever when its input text starts with "s" and otherwise answers "ok": two
;; instances of it share one compiled module (and Extism engine), so one timing out must not break
;; the other.
(module
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "{\"output\": \"ok\", \"is_error\": false}")
  (func (export "call") (result i32)
    (local $out i64) (local $i i64)
    ;; the input is {"input": "<text>"}: the text starts at byte 11
    (if (i32.eq (call $input_load_u8 (i64.const 11)) (i32.const 115))
      (then (loop $forever (br $forever))))
    (local.set $out (call $alloc (i64.const 35)))
    (block $copied (loop $copy
      (br_if $copied (i64.ge_u (local.get $i) (i64.const 35)))
      (call $store_u8 (i64.add (local.get $out) (local.get $i))
        (i32.load8_u (i32.wrap_i64 (local.get $i))))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $copy)))
    (call $output_set (local.get $out) (i64.const 35))
    (i32.const 0)))
