;; abi0_echo: an ABI 0 tool (or llm, or agent) that answers what it was asked
;; Written for cspm's tests (tests/integration/test_abi0_runtime.py): an Extism 0.x module as
;; extism-pdk 0.3 built them (kernel and host functions imported from `env`), done by hand.
(module
  (import "env" "extism_alloc" (func $alloc (param i64) (result i64)))
  (import "env" "extism_free" (func $free (param i64)))
  (import "env" "extism_length" (func $length (param i64) (result i64)))
  (import "env" "extism_load_u8" (func $load_u8 (param i64) (result i32)))
  (import "env" "extism_store_u8" (func $store_u8 (param i64 i32)))
  (import "env" "extism_input_length" (func $input_length (result i64)))
  (import "env" "extism_input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "env" "extism_output_set" (func $output_set (param i64 i64)))
  (import "env" "extism_error_set" (func $error_set (param i64)))
  (import "env" "extism_config_get" (func $config_get (param i64) (result i64)))
  (memory (export "memory") 8)
  (data (i32.const 16) "0123456789abcdef")
  (data (i32.const 64) "name")
  (data (i32.const 69) "Could not find config key 'name'")
  (data (i32.const 102) " heard: ")
  (data (i32.const 111) "inputprompt")
  (data (i32.const 123) " | system: ")
  (data (i32.const 135) "systemprompt")
  (data (i32.const 148) "input")
  (data (i32.const 154) "no input in the request")
  (data (i32.const 178) "trap")
  (data (i32.const 183) "fail")
  (data (i32.const 188) "the echo failed on purpose")
  (data (i32.const 215) "the host freed a handle it was lent")

  ;; ---- helpers: what extism-pdk 0.3 does, by hand -------------------------------------------

  ;; a flag set when a handle this plug-in passed to the host was gone after the call: 0.x hosts
  ;; never free what the plug-in passes (the PDK frees it), so this must stay 0
  (global $host_freed (mut i32) (i32.const 0))

  (func $copy (param $dst i32) (param $src i32) (param $len i32) (result i32)
    (local $i i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
      (i32.store8 (i32.add (local.get $dst) (local.get $i)) (i32.load8_u (i32.add (local.get $src) (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (i32.add (local.get $dst) (local.get $len)))

  (func $eq (param $a i32) (param $b i32) (param $len i32) (result i32)
    (local $i i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
      (if (i32.ne (i32.load8_u (i32.add (local.get $a) (local.get $i))) (i32.load8_u (i32.add (local.get $b) (local.get $i))))
        (then (return (i32.const 0))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (i32.const 1))

  ;; the bytes of an Extism handle copied to $dst; their length
  (func $load (param $h i64) (param $dst i32) (result i32)
    (local $len i32) (local $i i32)
    (local.set $len (i32.wrap_i64 (call $length (local.get $h))))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
      (i32.store8 (i32.add (local.get $dst) (local.get $i))
        (call $load_u8 (i64.add (local.get $h) (i64.extend_i32_u (local.get $i)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $len))

  ;; a new Extism block holding $len bytes from $src
  (func $new (param $src i32) (param $len i32) (result i64)
    (local $h i64) (local $i i32)
    (local.set $h (call $alloc (i64.extend_i32_u (local.get $len))))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
      (call $store_u8 (i64.add (local.get $h) (i64.extend_i32_u (local.get $i)))
        (i32.load8_u (i32.add (local.get $src) (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $h))

  ;; did the host free handle $h (of $len bytes) that it was only lent?
  (func $check_kept (param $h i64) (param $len i32)
    (if (i64.ne (call $length (local.get $h)) (i64.extend_i32_u (local.get $len)))
      (then (global.set $host_freed (i32.const 1)))))

  (func $input (param $dst i32) (result i32)
    (local $len i32) (local $i i32)
    (local.set $len (i32.wrap_i64 (call $input_length)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
      (i32.store8 (i32.add (local.get $dst) (local.get $i)) (call $input_load_u8 (i64.extend_i32_u (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $len))

  (func $output (param $src i32) (param $len i32)
    (call $output_set (call $new (local.get $src) (local.get $len)) (i64.extend_i32_u (local.get $len))))

  ;; as the 0.3 PDK fails: the message in a block, error_set, the block freed at once, return non-zero
  (func $fail (param $src i32) (param $len i32) (result i32)
    (local $h i64)
    (local.set $h (call $new (local.get $src) (local.get $len)))
    (call $error_set (local.get $h))
    (call $free (local.get $h))
    (i32.const 1))

  ;; config::get: the key in a block, config_get, the key freed by the plug-in; -1 when not set
  (func $config (param $key i32) (param $klen i32) (param $dst i32) (result i32)
    (local $k i64) (local $v i64) (local $len i32)
    (local.set $k (call $new (local.get $key) (local.get $klen)))
    (local.set $v (call $config_get (local.get $k)))
    (call $check_kept (local.get $k) (local.get $klen))
    (call $free (local.get $k))
    (if (i64.eqz (local.get $v)) (then (return (i32.const -1))))
    (local.set $len (call $load (local.get $v) (local.get $dst)))
    (call $free (local.get $v))
    (local.get $len))

  (func $hex (param $c i32) (result i32)
    (if (i32.ge_u (local.get $c) (i32.const 97)) (then (return (i32.sub (local.get $c) (i32.const 87)))))
    (if (i32.ge_u (local.get $c) (i32.const 65)) (then (return (i32.sub (local.get $c) (i32.const 55)))))
    (i32.sub (local.get $c) (i32.const 48)))

  ;; the unescaped text of the JSON string after `"<key>"` and a colon, written to $dst; -1 if absent
  ;; (escapes: \" \\ \/ \n \t \r \b \f and \u00XX; any other \u is written as `?`)
  (func $find (param $src i32) (param $len i32) (param $key i32) (param $klen i32) (param $dst i32) (result i32)
    (local $i i32) (local $end i32) (local $c i32) (local $out i32)
    (local.set $end (i32.add (local.get $src) (local.get $len)))
    (local.set $i (local.get $src))
    (block $found (loop $scan
      (if (i32.gt_u (i32.add (local.get $i) (i32.add (local.get $klen) (i32.const 2))) (local.get $end))
        (then (return (i32.const -1))))
      (if (i32.eq (i32.load8_u (local.get $i)) (i32.const 34))
        (then (if (call $eq (i32.add (local.get $i) (i32.const 1)) (local.get $key) (local.get $klen))
          (then (if (i32.eq (i32.load8_u (i32.add (local.get $i) (i32.add (local.get $klen) (i32.const 1)))) (i32.const 34))
            (then (br $found)))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $scan)))
    (local.set $i (i32.add (local.get $i) (i32.add (local.get $klen) (i32.const 2))))
    (block $open (loop $skip
      (if (i32.ge_u (local.get $i) (local.get $end)) (then (return (i32.const -1))))
      (local.set $c (i32.load8_u (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $open (i32.eq (local.get $c) (i32.const 34)))
      (br $skip)))
    (local.set $out (local.get $dst))
    (block $close (loop $char
      (if (i32.ge_u (local.get $i) (local.get $end)) (then (return (i32.const -1))))
      (local.set $c (i32.load8_u (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $close (i32.eq (local.get $c) (i32.const 34)))
      (if (i32.eq (local.get $c) (i32.const 92))
        (then
          (local.set $c (i32.load8_u (local.get $i)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (if (i32.eq (local.get $c) (i32.const 110)) (then (local.set $c (i32.const 10))))
          (if (i32.eq (local.get $c) (i32.const 116)) (then (local.set $c (i32.const 9))))
          (if (i32.eq (local.get $c) (i32.const 114)) (then (local.set $c (i32.const 13))))
          (if (i32.eq (local.get $c) (i32.const 98)) (then (local.set $c (i32.const 8))))
          (if (i32.eq (local.get $c) (i32.const 102)) (then (local.set $c (i32.const 12))))
          (if (i32.eq (local.get $c) (i32.const 117))
            (then
              (local.set $c (i32.add
                (i32.mul (call $hex (i32.load8_u (i32.add (local.get $i) (i32.const 2)))) (i32.const 16))
                (call $hex (i32.load8_u (i32.add (local.get $i) (i32.const 3))))))
              (if (i32.or (i32.ne (i32.load8_u (local.get $i)) (i32.const 48))
                          (i32.ne (i32.load8_u (i32.add (local.get $i) (i32.const 1))) (i32.const 48)))
                (then (local.set $c (i32.const 63))))
              (local.set $i (i32.add (local.get $i) (i32.const 4)))))))
      (i32.store8 (local.get $out) (local.get $c))
      (local.set $out (i32.add (local.get $out) (i32.const 1)))
      (br $char)))
    (i32.sub (local.get $out) (local.get $dst)))

  ;; raw bytes as the inside of a JSON string at $dst; the end
  (func $escape (param $dst i32) (param $src i32) (param $len i32) (result i32)
    (local $i i32) (local $c i32) (local $out i32)
    (local.set $out (local.get $dst))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
      (local.set $c (i32.load8_u (i32.add (local.get $src) (local.get $i))))
      (if (i32.or (i32.eq (local.get $c) (i32.const 34)) (i32.eq (local.get $c) (i32.const 92)))
        (then
          (i32.store8 (local.get $out) (i32.const 92))
          (i32.store8 (i32.add (local.get $out) (i32.const 1)) (local.get $c))
          (local.set $out (i32.add (local.get $out) (i32.const 2))))
        (else (if (i32.lt_u (local.get $c) (i32.const 32))
          (then
            (i32.store (local.get $out) (i32.const 0x3030755c))  ;; \u00
            (i32.store8 (i32.add (local.get $out) (i32.const 4))
              (i32.load8_u (i32.add (i32.const 16) (i32.shr_u (local.get $c) (i32.const 4)))))
            (i32.store8 (i32.add (local.get $out) (i32.const 5))
              (i32.load8_u (i32.add (i32.const 16) (i32.and (local.get $c) (i32.const 15)))))
            (local.set $out (i32.add (local.get $out) (i32.const 6))))
          (else
            (i32.store8 (local.get $out) (local.get $c))
            (local.set $out (i32.add (local.get $out) (i32.const 1)))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $out))

  ;; decimal text of $n at $dst; the end
  (func $itoa (param $dst i32) (param $n i64) (result i32)
    (local $len i32) (local $i i32) (local $m i64)
    (local.set $m (local.get $n))
    (loop $count
      (local.set $len (i32.add (local.get $len) (i32.const 1)))
      (local.set $m (i64.div_u (local.get $m) (i64.const 10)))
      (br_if $count (i64.ne (local.get $m) (i64.const 0))))
    (local.set $i (local.get $len))
    (loop $digit
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (i32.store8 (i32.add (local.get $dst) (local.get $i))
        (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $n) (i64.const 10)))))
      (local.set $n (i64.div_u (local.get $n) (i64.const 10)))
      (br_if $digit (i32.ne (local.get $i) (i32.const 0))))
    (i32.add (local.get $dst) (local.get $len)))

  (func $atoi (param $src i32) (param $len i32) (result i64)
    (local $i i32) (local $n i64)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
      (local.set $n (i64.add (i64.mul (local.get $n) (i64.const 10))
        (i64.extend_i32_u (i32.sub (i32.load8_u (i32.add (local.get $src) (local.get $i))) (i32.const 48)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (local.get $n))


  ;; a tool, llm or agent as the original ones were, answering raw text:
  ;; LLMReq -> "<name> heard: <inputprompt> | system: <systemprompt>"; ToolReq or AgentReq ->
  ;; "<name> heard: <input>" (name = config `name`); input "trap" traps, "fail" fails with error_set
  (func (export "call") (result i32)
    (local $n i32) (local $text i32) (local $name i32) (local $p i32) (local $sys i32)
    (local.set $n (call $input (i32.const 4096)))
    (local.set $name (call $config (i32.const 64) (i32.const 4) (i32.const 380000)))
    (if (i32.lt_s (local.get $name) (i32.const 0)) (then (return (call $fail (i32.const 69) (i32.const 32)))))
    (local.set $p (call $copy (i32.const 210000) (i32.const 380000) (local.get $name)))
    (local.set $p (call $copy (local.get $p) (i32.const 102) (i32.const 8)))
    (local.set $text (call $find (i32.const 4096) (local.get $n) (i32.const 111) (i32.const 11) (local.get $p)))
    (if (i32.ge_s (local.get $text) (i32.const 0))
      (then
        (local.set $p (i32.add (local.get $p) (local.get $text)))
        (local.set $p (call $copy (local.get $p) (i32.const 123) (i32.const 11)))
        (local.set $sys (call $find (i32.const 4096) (local.get $n) (i32.const 135) (i32.const 12) (local.get $p)))
        (local.set $p (i32.add (local.get $p) (local.get $sys)))
        (call $output (i32.const 210000) (i32.sub (local.get $p) (i32.const 210000)))
        (return (i32.const 0))))
    (local.set $text (call $find (i32.const 4096) (local.get $n) (i32.const 148) (i32.const 5) (local.get $p)))
    (if (i32.lt_s (local.get $text) (i32.const 0)) (then (return (call $fail (i32.const 154) (i32.const 23)))))
    (if (i32.eq (local.get $text) (i32.const 4))
      (then
        (if (call $eq (local.get $p) (i32.const 178) (i32.const 4)) (then unreachable))
        (if (call $eq (local.get $p) (i32.const 183) (i32.const 4)) (then (return (call $fail (i32.const 188) (i32.const 26)))))))
    (local.set $p (i32.add (local.get $p) (local.get $text)))
    (if (global.get $host_freed) (then (return (call $fail (i32.const 215) (i32.const 35)))))
    (call $output (i32.const 210000) (i32.sub (local.get $p) (i32.const 210000)))
    (i32.const 0))
)
