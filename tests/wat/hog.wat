;; Grows its memory until it cannot, then traps: the host's memory limit must stop it.
(module
  (memory (export "memory") 1)
  (func (export "call") (result i32)
    (loop $grow
      (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    unreachable))
