;; Loops forever: the host's timeout must stop it.
(module
  (memory (export "memory") 1)
  (func (export "call") (result i32)
    (loop $forever (br $forever))
    (i32.const 0)))
