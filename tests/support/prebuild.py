"""Build the recipe images a test session will need in the background, while earlier tests boot guests.

Why: a TCG guest keeps one of this machine's two cores busy, and an image build
(debootstrap, dpkg, mkfs) mostly waits on the disk or the other core. Built one
after the other, the e2e tier spent minutes of `make test` on builds nobody
overlapped. A test module lists the recipes its stacks declare in
`IMAGE_RECIPES`; once pytest has collected the session, one thread builds the
missing ones, in the order the tests will need them, at a lower CPU priority.

Nothing depends on it for correctness: the build itself is what a test's `up`
runs (tools/build-image.sh), which holds a lock per cache, so a test that gets
there first builds the image itself, and a test that arrives during a
background build waits for it and then finds the image cached.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from components.images.golden import BUILD_IMAGE
from components.images.recipe import Recipe


@dataclass
class Prebuild:
    recipes: list[Recipe]
    log: Path
    done: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    stopping: bool = False
    thread: threading.Thread | None = None

    def start(self) -> "Prebuild":
        self.thread = threading.Thread(target=self._run, name="image-prebuild", daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        with self.log.open("a") as log:
            for recipe in self.recipes:
                if self.stopping:
                    return
                if recipe.manifest() is not None:
                    continue
                started = time.monotonic()
                self.proc = subprocess.Popen(["nice", "-n", "10", str(BUILD_IMAGE), "--recipe", "-"],
                                             stdin=subprocess.PIPE, stdout=log, stderr=log, text=True)
                self.proc.communicate(recipe.to_json())
                label = f"{recipe.name}-{recipe.hash} ({time.monotonic() - started:.0f} s)"
                (self.done if self.proc.returncode == 0 else self.failed).append(label)

    def stop(self) -> None:
        """At the end of the session: a build still running is no longer wanted (an interrupted run)."""
        self.stopping = True
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def summary(self) -> str:
        parts = [f"built {', '.join(self.done)}" if self.done else "nothing to build"]
        if self.failed:
            parts.append(f"FAILED {', '.join(self.failed)} (the tests that need them build them again; "
                         f"log: {self.log})")
        return "images built in the background: " + "; ".join(parts)


def wanted(modules) -> list[Recipe]:
    """The recipes the given test modules declare in IMAGE_RECIPES, first needed first, each once."""
    seen: dict[str, Recipe] = {}
    for module in modules:
        for data in getattr(module, "IMAGE_RECIPES", ()):
            recipe = Recipe.parse(data, check_packages=False)
            seen.setdefault(recipe.hash, recipe)
    return list(seen.values())


def needing_no_build_first(items: list) -> list:
    """Test items reordered so modules that declare no recipe image run before those that do.

    Why: from empty caches the background builds take minutes (Xfce about 4);
    a test that needs an image before its build is done waits for it. Modules
    booting only the golden image fill that time instead. The sort is stable,
    so each module's tests stay together and in their own order.
    """
    return sorted(items, key=lambda item: bool(getattr(getattr(item, "module", None), "IMAGE_RECIPES", ())))


def start(modules) -> Prebuild | None:
    if os.environ.get("VDESK_PREBUILD", "1") == "0":
        return None
    recipes = [r for r in wanted(modules) if r.manifest() is None]
    if not recipes:
        return None
    log = Path(tempfile.gettempdir()) / f"vdesk-prebuild-{os.getpid()}.log"
    return Prebuild(recipes, log).start()
