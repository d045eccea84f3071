;; Imports a host function no Chainsocket host provides.
(module
  (import "extism:host/user" "launch_missiles" (func $launch (param i64) (result i64)))
  (memory (export "memory") 1)
  (func (export "call") (result i32) (drop (call $launch (i64.const 0))) (i32.const 0)))
