;; hello-world: the module behind `capsule run hello-world`.
;;
;; Like Docker's hello-world (a few hundred bytes of hand-written assembly), this is a
;; hand-written program: a WASI preview1 command that writes one message to standard
;; output and exits 0. It imports nothing but `fd_write` and `proc_exit`, so it shows
;; that the engine, the WASI host and the module cache work, and nothing else.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit"
    (func $proc_exit (param i32)))

  (memory (export "memory") 1)

  ;; Bytes 0..8 hold one iovec {buf, len}, bytes 8..12 the count fd_write returns.
  ;; The message starts at 64 and ends at its first NUL byte.
  (data (i32.const 64)
    "\n"
    "Hello from Capsule!\n"
    "This message shows that your installation appears to be working correctly.\n"
    "\n"
    "To generate this message, Capsule took the following steps:\n"
    " 1. The capsule CLI found the \"hello-world\" image, built into the capsule\n"
    "    binary itself (so nothing was downloaded), in its OCI image store.\n"
    " 2. Wasmtime compiled the module to native code and Capsule kept the result\n"
    "    in its module cache, so the next run starts without compiling.\n"
    " 3. Capsule created a container from the image and ran the module in a\n"
    "    sandbox: only the image's files, no network and no environment\n"
    "    variables unless you grant them (-v, -e).\n"
    " 4. The module wrote this message to its standard output, which Capsule\n"
    "    streamed to your terminal.\n"
    "\n"
    "To try something more ambitious, build an image of your own program:\n"
    " $ capsule build -t my-app .      (from a Capsulefile, Dockerfile syntax)\n"
    " $ capsule run -v \"$PWD:/work\" -w /work my-app input.txt\n"
    "\n"
    "To see what this engine supports:\n"
    " $ capsule info\n"
    "\n"
    "\00")

  (func $strlen (param $p i32) (result i32)
    (local $n i32)
    (block $done
      (loop $next
        (br_if $done
          (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $n))

  (func (export "_start")
    (local $errno i32)
    (i32.store (i32.const 0) (i32.const 64))
    (i32.store (i32.const 4) (call $strlen (i32.const 64)))
    ;; fd_write may write less than asked (a pipe, a slow terminal): loop until done.
    (block $written
      (loop $again
        (br_if $written (i32.eqz (i32.load (i32.const 4))))
        (local.set $errno
          (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
        (if (local.get $errno)
          (then (call $proc_exit (i32.const 1))))
        (i32.store (i32.const 0)
          (i32.add (i32.load (i32.const 0)) (i32.load (i32.const 8))))
        (i32.store (i32.const 4)
          (i32.sub (i32.load (i32.const 4)) (i32.load (i32.const 8))))
        (br $again)))))
