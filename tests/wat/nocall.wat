;; A valid module without the required `call` export.
(module
  (memory (export "memory") 1)
  (func (export "run") (result i32) (i32.const 0)))
