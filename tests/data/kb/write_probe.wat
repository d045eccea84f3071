;; A tool that tries to create and write `probe.txt` in the first granted folder (WASI fd 3) and
;; answers {"output": "errno NN", "is_error": false}: 00 when the write worked. tests/test_plugin_kb.py
;; runs it under the same grant as the kb plug-in to check that `paths` grants are read-only.
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "probe.txt")                                   ;; path, 9 bytes
  (data (i32.const 16) "written\n")                                  ;; content, 8 bytes
  (data (i32.const 64) "{\"output\": \"errno 00\", \"is_error\": false}") ;; 41 bytes, digits at 82, 83

  (func $answer (param $errno i32) (result i32)
    (local $h i64) (local $i i32)
    (i32.store8 (i32.const 82) (i32.add (i32.const 48) (i32.div_u (local.get $errno) (i32.const 10))))
    (i32.store8 (i32.const 83) (i32.add (i32.const 48) (i32.rem_u (local.get $errno) (i32.const 10))))
    (local.set $h (call $alloc (i64.const 41)))
    (block $done
      (loop $copy
        (br_if $done (i32.ge_u (local.get $i) (i32.const 41)))
        (call $store_u8 (i64.add (local.get $h) (i64.extend_i32_u (local.get $i)))
                        (i32.load8_u (i32.add (i32.const 64) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $copy)))
    (call $output_set (local.get $h) (i64.const 41))
    (i32.const 0))

  (func (export "call") (result i32)
    (local $errno i32)
    ;; path_open(dirfd 3, no symlink follow, "probe.txt", O_CREAT|O_TRUNC, rights fd_write, 0, fdflags 0, &fd @32)
    (local.set $errno (call $path_open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 9)
      (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 32)))
    (if (i32.ne (local.get $errno) (i32.const 0))
      (then (return (call $answer (local.get $errno)))))
    ;; iovec {buf 16, len 8} at 40; bytes written at 48
    (i32.store (i32.const 40) (i32.const 16))
    (i32.store (i32.const 44) (i32.const 8))
    (call $answer (call $fd_write (i32.load (i32.const 32)) (i32.const 40) (i32.const 1) (i32.const 48)))))
