"""An MkDocs hook: KaTeX, from a package on this machine, copied into the built site (no CDN).

The site renders math with KaTeX in the reader's browser (``docs/javascripts/katex-init.js``). Its files come
from the first of: ``$INNA_KATEX_DIR``, Debian's ``libjs-katex`` (``/usr/share/javascript/katex``), npm's
``node_modules/katex/dist``. They are copied to ``assets/katex/`` after each build, fonts included.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mkdocs.exceptions import PluginError

#: the files the pages load, relative to a KaTeX distribution's root
_NEEDED = ("katex.min.js", "katex.min.css", "fonts")


def katex_dir() -> Path:
    """The KaTeX distribution to copy; a PluginError that says how to install one when none is found."""
    candidates = [os.environ.get("INNA_KATEX_DIR"), "/usr/share/javascript/katex", "node_modules/katex/dist"]
    for candidate in filter(None, candidates):
        root = Path(candidate)
        if all((root / name).exists() for name in _NEEDED):
            return root
    raise PluginError(
        "KaTeX not found (the site renders its math with it, offline): install Debian's libjs-katex "
        "(apt-get install libjs-katex), or run `npm install katex` in the repository, or set INNA_KATEX_DIR to a "
        f"directory holding {', '.join(_NEEDED)}; looked in {', '.join(filter(None, candidates))}"
    )


def on_config(config, **kwargs):
    katex_dir()  # fail before the build, not after it
    return config


def on_post_build(config, **kwargs) -> None:
    source = katex_dir()
    target = Path(config["site_dir"]) / "assets" / "katex"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in ("katex.min.js", "katex.min.css"):
        shutil.copyfile(source / name, target / name)
    fonts = (source / "fonts").resolve()  # Debian's is a link to /usr/share/fonts/truetype/katex
    shutil.copytree(fonts, target / "fonts", ignore=shutil.ignore_patterns("*.otf", "*.pfb", "*.afm"))
