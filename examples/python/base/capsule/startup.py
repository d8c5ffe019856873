"""What the python:3.15 image's bootstrap installs before any user code runs.

Each fix applies when its module is first imported (a finder at the front of
sys.meta_path runs the patch right after the module's code), so a program that never
imports these modules pays nothing:

* socket, socketserver: the container's published ports for unmodified servers, and
  requests served one at a time where a server would start a thread (socket_shim.py).
* hashlib: pbkdf2_hmac, which this build lacks (no OpenSSL), in Python (Django's
  password hashing needs it).
* pip._vendor.distlib.scripts, distlib.scripts: console scripts that pip writes get
  `#!/usr/local/bin/python3.15` as their first line. distlib would write a `#!/bin/sh`
  trampoline instead, because that interpreter is itself a #! script, which some
  kernels (macOS) refuse as an interpreter; Capsule, like Linux, runs such nested
  scripts, and its images have no /bin/sh.
"""

import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def _load_sibling(name):
    """A module of this directory, loaded from its file (nothing new on sys.path)."""
    full = f"_capsule_{name}"
    if full in sys.modules:
        return sys.modules[full]
    spec = importlib.util.spec_from_file_location(full, os.path.join(HERE, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[full] = module
    spec.loader.exec_module(module)
    return module


def _patch_socket(module):
    _load_sibling("socket_shim").patch_socket(module)


def _patch_socketserver(module):
    _load_sibling("socket_shim").patch_socketserver(module)


def _patch_distlib_scripts(module):
    """ScriptMaker._is_shell answers False for this image's python: it is a #! script,
    and Capsule runs a #! script whose interpreter is one (as Linux does)."""
    maker = getattr(module, "ScriptMaker", None)
    original = getattr(maker, "_is_shell", None)
    if original is None or getattr(original, "_capsule", False):
        return

    def _is_shell(self, executable):
        try:
            if os.path.realpath(executable) == os.path.realpath(sys.executable):
                return False
        except (OSError, ValueError, TypeError):
            pass
        return original(self, executable)

    _is_shell._capsule = True
    _is_shell.__doc__ = original.__doc__
    maker._is_shell = _is_shell


def _pbkdf2_hmac(hash_name, password, salt, iterations, dklen=None):
    """hashlib.pbkdf2_hmac as CPython computed it before 3.12 without OpenSSL (RFC 8018,
    HMAC over prepared inner and outer hash states), for this build, which has no
    OpenSSL and so no pbkdf2_hmac at all (Django hashes passwords with it)."""
    import hashlib

    if not isinstance(hash_name, str):
        raise TypeError(hash_name)
    password = bytes(memoryview(password))
    salt = bytes(memoryview(salt))
    inner = hashlib.new(hash_name)
    outer = hashlib.new(hash_name)
    blocksize = getattr(inner, "block_size", 64)
    if len(password) > blocksize:
        password = hashlib.new(hash_name, password).digest()
    password = password + b"\x00" * (blocksize - len(password))
    inner.update(password.translate(bytes(x ^ 0x36 for x in range(256))))
    outer.update(password.translate(bytes(x ^ 0x5C for x in range(256))))

    def prf(msg):
        icpy = inner.copy()
        ocpy = outer.copy()
        icpy.update(msg)
        ocpy.update(icpy.digest())
        return ocpy.digest()

    if iterations < 1:
        raise ValueError(iterations)
    if dklen is None:
        dklen = outer.digest_size
    if dklen < 1:
        raise ValueError(dklen)
    dkey = b""
    block = 1
    while len(dkey) < dklen:
        prev = prf(salt + block.to_bytes(4, "big"))
        key = int.from_bytes(prev, "big")
        for _ in range(iterations - 1):
            prev = prf(prev)
            key ^= int.from_bytes(prev, "big")
        block += 1
        dkey += key.to_bytes(inner.digest_size, "big")
    return dkey[:dklen]


def _patch_hashlib(module):
    if not hasattr(module, "pbkdf2_hmac"):
        _pbkdf2_hmac.__module__ = "hashlib"
        module.pbkdf2_hmac = _pbkdf2_hmac
        names = getattr(module, "__all__", None)
        if isinstance(names, tuple) and "pbkdf2_hmac" not in names:
            module.__all__ = names + ("pbkdf2_hmac",)


PATCHES = {
    "hashlib": _patch_hashlib,
    "socket": _patch_socket,
    "socketserver": _patch_socketserver,
    "pip._vendor.distlib.scripts": _patch_distlib_scripts,
    "distlib.scripts": _patch_distlib_scripts,
}


class AfterImport:
    """A meta path finder that runs PATCHES[name] right after module `name` is first
    executed, before its importer sees it (so `from socket import socket` already gets
    the patched class)."""

    def __init__(self, patches):
        self.patches = patches
        self._finding = set()

    def find_spec(self, name, path=None, target=None):
        patch = self.patches.get(name)
        if patch is None or name in self._finding:
            return None
        self._finding.add(name)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._finding.discard(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader

        class Loader:
            def create_module(self, spec):
                return loader.create_module(spec)

            def exec_module(self, module):
                spec.loader = module.__loader__ = loader
                loader.exec_module(module)
                patch(module)

        spec.loader = Loader()
        return spec


def install():
    """Patches the modules already imported now, the others when they are imported."""
    for name, patch in PATCHES.items():
        if name in sys.modules:
            patch(sys.modules[name])
    if not any(isinstance(f, AfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, AfterImport(PATCHES))
