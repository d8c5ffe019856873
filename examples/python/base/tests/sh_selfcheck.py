#!/usr/bin/env python3
"""Self-check of examples/python/base/sh on the host's python3 (3.9 or later).

    python3 examples/python/base/tests/sh_selfcheck.py [BOOTSTRAP]

Builds, in a temporary directory, the image's layout with the host's python3 standing in
for the WebAssembly module: usr/local/bin/python3.15.wasm (a stub: the WebAssembly magic
number), usr/local/bin/python3.15 (the CPython command line: BOOTSTRAP, by default the
image's examples/python/base/python3.15 when it exists, else a small stand-in below),
python and python3 linking to it, pip, a plain module, scripts with #! chains, and bin/sh
(this shell, its #! pointed at that python3.15). Each case runs the chain Capsule runs
for `SHELL ["/bin/sh", "-c"]`: python3 usr/local/bin/python3.15 bin/sh -c LINE (argv as
Capsule gives it to the module's `run`), and compares status, stdout and stderr. Prints
one line per case and exits 1 when any fails.
"""

import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SH = os.path.join(HERE, "..", "sh")

# A stand-in for the image's CPython command line: python [-c CMD | -m MOD | FILE] ARGS.
STUB_BOOTSTRAP = r'''
import os, runpy, sys
args = sys.argv[1:]
if args[:1] == ["--version"]:
    print("Python stub")
elif args[:1] == ["-c"]:
    sys.argv[:] = ["-c"] + args[2:]
    sys.path.insert(0, "")
    exec(compile(args[1], "<string>", "exec"), {"__name__": "__main__"})
elif args[:1] == ["-m"]:
    sys.argv[:] = [args[1]] + args[2:]
    sys.path.insert(0, os.getcwd())
    runpy.run_module(args[1], run_name="__main__", alter_sys=True)
else:
    sys.argv[:] = args
    sys.path.insert(0, os.path.dirname(os.path.realpath(args[0])))
    runpy.run_path(args[0], run_name="__main__")
'''


def write(path, text, mode=0o755):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(text if isinstance(text, bytes) else text.encode())
    os.chmod(path, mode)


def layout(root, bootstrap):
    bin_ = os.path.join(root, "usr/local/bin")
    wasm = os.path.join(bin_, "python3.15.wasm")
    py = os.path.join(bin_, "python3.15")
    write(wasm, b"\0asm\x01\0\0\0")
    if bootstrap:
        with open(bootstrap) as f:
            body = f.read().split("\n", 1)[1]
    else:
        body = STUB_BOOTSTRAP
    write(py, f"#!{wasm}#run\n{body}")
    os.symlink("python3.15", os.path.join(bin_, "python"))
    os.symlink("python3.15", os.path.join(bin_, "python3"))
    write(os.path.join(bin_, "pip"),
          f"#!{py}\nimport sys\nprint('pip 0.0 (stub) argv', sys.argv)\n")
    write(os.path.join(bin_, "tool.wasm"), b"\0asm\x01\0\0\0")
    write(os.path.join(bin_, "node.wasm"), b"\0asm\x01\0\0\0")
    write(os.path.join(bin_, "nodescript"), f"#!{bin_}/node.wasm\nconsole.log(1)\n")
    write(os.path.join(bin_, "viaenv"),
          "#!/usr/bin/env python3\nimport sys\nprint('viaenv', sys.argv)\n")
    write(os.path.join(bin_, "direct"),
          f"#!{wasm}#run\nimport sys\nprint('direct', sys.argv)\n")
    write(os.path.join(bin_, "wasmarg"), f"#!{wasm}#run -u\nprint(1)\n")
    write(os.path.join(bin_, "badinterp"), "#!/nonexistent/interp\n")
    write(os.path.join(bin_, "blank"), "#!   \n")
    write(os.path.join(bin_, "loop"), f"#!{bin_}/loop\n")
    write(os.path.join(bin_, "textscript"), "echo text script \"$@\"; exit 4\n")
    write(os.path.join(bin_, "crash"), f"#!{wasm}#run\ndef f():\n    1/0\nf()\n")
    with open(SH) as f:
        sh = f.read().split("\n", 1)[1]
    write(os.path.join(root, "bin/sh"), f"#!{py}\n{sh}")
    app = os.path.join(root, "code")
    write(os.path.join(app, "manage.py"),
          "import sys\nprint('manage', sys.argv, sys.path[0] == __import__('os').path"
          ".dirname(__import__('os').path.realpath(__file__)))\n", 0o644)
    write(os.path.join(app, "a.txt"), "", 0o644)
    write(os.path.join(app, "b.txt"), "", 0o644)
    os.makedirs(os.path.join(app, "sub"))
    write(os.path.join(app, "script.sh"), 'echo "script $0 $# $1"; set -e; false; echo no\n', 0o644)
    return py


def cases(root):
    b = os.path.join(root, "usr/local/bin")
    app = os.path.join(root, "code")
    return [
        # (line, extra sh arguments, status, stdout, stderr fragment or None for empty)
        ("echo hello   world", [], 0, "hello world\n", None),
        ('python -c "print(6*7)"', [], 0, "42\n", None),
        ('pip --version && python -c "import sys; print(sys.argv)"', [], 0,
         f"pip 0.0 (stub) argv ['{b}/pip', '--version']\n['-c']\n", None),
        ("python -c 'import sys; print(sys.argv)' a 'b c'", [], 0, "['-c', 'a', 'b c']\n", None),
        ("python manage.py migrate", [], 0, "manage ['manage.py', 'migrate'] True\n", None),
        ("python3 -c 'print(1)' && python3.15 -c 'print(2)'", [], 0, "1\n2\n", None),
        ("false || echo recovered; true && echo yes; false && echo no; echo $?", [], 0,
         "recovered\nyes\n1\n", None),
        ("X=1; echo $X; export Y=2; python -c 'import os; print(os.environ.get(\"X\"), os.environ[\"Y\"])'",
         [], 0, "1\nNone 2\n", None),
        ("Z=3 python -c 'import os; print(os.environ[\"Z\"])'; python -c 'import os; print(os.environ.get(\"Z\"))'",
         [], 0, "3\nNone\n", None),
        ("python -c 'import os; os.environ[\"LEAK\"] = \"1\"'; echo \"[$LEAK]\"", [], 0, "[]\n", None),
        ("cd sub && python -c 'import os; print(os.path.basename(os.getcwd()))' && cd - >/dev/null", [], 2, "",
         "sh: redirections (>) are not supported"),
        ("cd sub && python -c 'import os; print(os.path.basename(os.getcwd()))'; cd ..; pwd", [], 0,
         f"sub\n{app}\n", None),
        ("python -c 'import os; os.chdir(\"/\")'; pwd", [], 0, f"{app}\n", None),
        ("python -c 'import sys; sys.exit(3)'; echo $?", [], 0, "3\n", None),
        ("python -c 'raise SystemExit(\"boom\")'; echo $?", [], 0, "1\n", "boom\n"),
        ("python -c '1/0'; echo $?", [], 0, "1\n", "ZeroDivisionError: division by zero"),
        ("crash", [], 1, "", "ZeroDivisionError"),
        ("echo a; exit 5; echo b", [], 5, "a\n", None),
        ("false; exit", [], 1, "", None),
        ("echo first; echo a | cat", [], 2, "", "sh: pipes (|) are not supported"),
        ("echo a > f", [], 2, "", "sh: redirections (>) are not supported"),
        ("python x.py 2>&1", [], 2, "", "sh: redirections (>&) are not supported"),
        ("sleep 1 &", [], 2, "", "sh: background jobs (&) are not supported"),
        ("(cd sub)", [], 2, "", "sh: subshells and functions ( ) are not supported"),
        ("echo $(date)", [], 2, "", "sh: command substitution $(...) is not supported"),
        ("echo `date`", [], 2, "", "sh: command substitution `...` is not supported"),
        ("echo $((1+2))", [], 2, "", "sh: arithmetic expansion $((...)) is not supported"),
        ("if true; then echo x; fi", [], 2, "", "sh: 'if': compound commands"),
        ("echo 'unterminated", [], 2, "", "sh: syntax error: unterminated quoted string"),
        ("echo ${X%.py}", [], 2, "", "sh: ${X%.py}: this form of ${...} is not supported"),
        ("&& echo", [], 2, "", "sh: syntax error: '&&' without a command before it"),
        ("tool.wasm --help", [], 126, "",
         'sh: tool.wasm: this shell runs Python programs only (Capsule runs one WebAssembly '
         'module per container): use the exec form RUN ["tool.wasm", ...]\n'),
        ("python3.15.wasm -c 1", [], 126, "", "use the exec form RUN [\"python3.15.wasm\", ...]"),
        ("nodescript", [], 126, "", "sh: nodescript: this shell runs Python programs only"),
        ("nosuch arg; echo $?", [], 0, "127\n", "sh: nosuch: not found\n"),
        ("./nosuch", [], 127, "", "sh: ./nosuch: not found\n"),
        ("sub", [], 127, "", "sh: sub: not found\n"),
        ("./sub", [], 126, "", "sh: ./sub: is a directory\n"),
        ("badinterp", [], 127, "", "its #! interpreter /nonexistent/interp is not found"),
        ("blank", [], 126, "", "its #! line names no interpreter"),
        ("loop", [], 126, "", "more than 4 #! interpreters deep"),
        ("wasmarg", [], 126, "", "gives the Python module an argument (-u)"),
        ("viaenv a", [], 0, f"viaenv ['{b}/viaenv', 'a']\n", None),
        ("direct a 'b c'", [], 0, f"direct ['{b}/direct', 'a', 'b c']\n", None),
        ("textscript a b", [], 4, "text script a b\n", None),
        ("echo '$HOME' \"a  b\" a\\ b \"\\$X\" # a comment", [], 0, "$HOME a  b a b $X\n", None),
        ("echo ${UNSET:-default} ${EMPTY-unset} ${#Y} \"${Q:=set}\" $Q", [], 0,
         "default 3 set set\n", None),
        ("echo $0 $1 $# \"$*\"", ["name", "one", "two three"], 0,
         "name one 2 one two three\n", None),
        ("python -c 'import sys; print(sys.argv[1:])' \"$@\" $@", ["n", "a b", ""], 0,
         "['a b', '', 'a', 'b']\n", None),
        ("python -c 'import sys; print(sys.argv[1:])' \"$@\"", [], 0, "[]\n", None),
        ("V='x   y'; python -c 'import sys; print(sys.argv[1:])' $V \"$V\" ''", [], 0,
         "['x', 'y', 'x   y', '']\n", None),
        ("echo *.txt '*.txt' *.none \"*\"", [], 0, "a.txt b.txt *.txt *.none *\n", None),
        ("echo ~ ~/x '~'", [], 0, f"{os.environ.get('HOME', '~')} {os.environ.get('HOME', '~')}/x ~\n", None),
        ("echo -n a; echo -e 'b\\tc'; echo 'd\\te'", [], 0, "ab\tc\nd\\te\n", None),
        ("python -c 'import json; json.marker = 1' && python -c 'import json; print(hasattr(json, \"marker\"))'",
         [], 0, "False\n", None),
        ("python -c 'import sys; sys.path.append(\"/leak\")' && python -c 'import sys; print(\"/leak\" in sys.path)'",
         [], 0, "False\n", None),
        ("python -c 'open(\"newmod.py\", \"w\").write(\"X = 5\")' && python -c 'import newmod; print(newmod.X)'",
         [], 0, "5\n", None),
        ("set -e; false || echo ok; false; echo no", [], 1, "ok\n", None),
        ("exec python -c 'print(1)'; echo not-reached", [], 0, "1\n", None),
        ("exec python -c 'raise SystemExit(9)'; echo not-reached", [], 9, "", None),
        ("sh -c 'echo inner $0 $1' n1 a1 && echo outer", [], 0, "inner n1 a1\nouter\n", None),
        ("sh script.sh arg1", [], 1, "script script.sh 1 arg1\n", None),
        ("set -x; echo a 'b c'", [], 0, "a b c\n", "+ echo a 'b c'\n"),
        ("python -c 'import sys; print(sys.executable.endswith(\"python\"), sys.argv)'; "
         "python -c 'import sys; print(sys.argv)'", [], 0, None, None),
        ("unset Y; echo \"[$Y]\"; set -u; echo $NOPE; echo after", [], 2, "[]\n",
         "sh: NOPE: parameter not set\n"),
        ("export BAD-NAME=1", [], 2, "", "sh: export: BAD-NAME=1: bad variable name\n"),
        ("echo a &&\n  echo b\n\necho c", [], 0, "a\nb\nc\n", None),
    ]


def main():
    bootstrap = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "python3.15")
    if not os.path.exists(bootstrap):
        bootstrap = None
    failures = 0
    with tempfile.TemporaryDirectory() as root:
        py = layout(root, bootstrap)
        env = {"PATH": f"{root}/usr/local/bin:{root}/bin", "HOME": os.environ.get("HOME", "/root"),
               "Y": "abc", "EMPTY": "", "LANG": "C.UTF-8"}
        print(f"bootstrap: {bootstrap or 'the stand-in in this file'}")
        for line, args, status, out, err in cases(root):
            run = subprocess.run([sys.executable, py, os.path.join(root, "bin/sh"), "-c", line, *args],
                                 cwd=os.path.join(root, "code"), env=env, capture_output=True,
                                 text=True, timeout=60)
            problems = []
            if run.returncode != status:
                problems.append(f"status {run.returncode}, expected {status}")
            if out is not None and run.stdout != out:
                problems.append(f"stdout {run.stdout!r}, expected {out!r}")
            if err is None and run.stderr:
                problems.append(f"stderr {run.stderr!r}, expected none")
            if err is not None and err not in run.stderr:
                problems.append(f"stderr {run.stderr!r}, expected it to hold {err!r}")
            if err is not None and run.stderr.count("\n") > 1 and "Traceback" not in run.stderr:
                problems.append(f"stderr has more than one line: {run.stderr!r}")
            if '/sh", line' in run.stderr:
                problems.append("the shell's own frames are in a traceback")
            failures += bool(problems)
            print(("FAIL " if problems else "ok   ") + repr(line) + "".join("\n     " + p for p in problems))
    print(f"{failures} failed" if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
