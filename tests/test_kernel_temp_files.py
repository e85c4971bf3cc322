"""Generated kernel modules are written through an unguessable temporary file created with O_EXCL and
O_NOFOLLOW in the kernel folder (issue 22): a symlink planted where the temporary file will be, or at the
old predictable ``<name>.<pid>.tmp``, never redirects the write."""

from __future__ import annotations

import os
import secrets
import sys
import uuid

from engine.fast import units


def test_planted_symlinks_are_never_followed(tmp_path, monkeypatch):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    name = f"r3symlink_{uuid.uuid4().hex[:12]}"
    folder = units.kernel_dir()
    path = folder / f"{name}.py"
    old_style = path.with_suffix(f".{os.getpid()}.tmp")
    guessed = folder / f".{name}.py.{'ab' * 6}.tmp"
    planted = [old_style, guessed]
    for link in planted:
        link.symlink_to(victim)
    tokens = iter(["ab" * 6])  # the first name drawn is the planted one; then random ones
    real = secrets.token_hex
    monkeypatch.setattr(secrets, "token_hex", lambda n: next(tokens, None) or real(n))
    try:
        module = units._module(name, "VALUE = 42\n")
        assert module.VALUE == 42
        assert victim.read_text() == "precious"
        assert path.read_text() == "VALUE = 42\n" and not path.is_symlink()
        assert all(link.is_symlink() for link in planted)  # left alone, not written through
        assert not [p for p in folder.iterdir() if p.name.startswith(f".{name}.py.") and not p.is_symlink()]
    finally:
        for p in [path, *planted]:
            p.unlink(missing_ok=True)
        units._modules.pop(name, None)
        sys.modules.pop(name, None)
