"""Children that start with a fresh interpreter (spawn, forkserver).

Such a child inherits no logging configuration: the recipe is to configure it
again there, with the same ``dictConfig`` or with ``safelog.install()`` in a
``multiprocessing`` initializer.  These tests run the recipe with both start
methods, with several processes appending to one file, and check that every
record is there once and whole, as with forked children.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scenario import run_ok

PROCESSES = 4
RECORDS = 200

# The configuration every process uses; "queue" puts a safelog.QueueHandler
# in front of the file, whose records a child writes when it exits.
CONFIGS = {
    "file": {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(process)d %(message)s"}},
        "handlers": {
            "file": {
                "class": "safelog.FileHandler",
                "filename": "app.log",
                "formatter": "plain",
            }
        },
        "root": {"level": "INFO", "handlers": ["file"]},
    },
    "queue": {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(process)d %(message)s"}},
        "handlers": {
            "file": {
                "class": "safelog.FileHandler",
                "filename": "app.log",
                "formatter": "plain",
            },
            "queue": {"class": "safelog.QueueHandler", "handlers": ["file"]},
        },
        "root": {"level": "INFO", "handlers": ["queue"]},
    },
}

# The recipe: each pool process configures logging in its initializer, either
# with the parent's dictConfig, or its own set-up followed by install().
SCRIPT = """
import logging, logging.config, multiprocessing, sys
import safelog

CONFIG = {config}
PAYLOAD = "x" * 300  # long records: a torn write would show

def configure_with_dict_config():
    logging.config.dictConfig(CONFIG)

def configure_with_install():
    logging.basicConfig(filename="app.log", level=logging.INFO,
                        format="%(process)d %(message)s")
    safelog.install()

def work(worker):
    log = logging.getLogger("worker")
    for number in range({records}):
        log.info("w%d.%d %s", worker, number, PAYLOAD)
    return worker

if __name__ == "__main__":
    initializer = globals()["configure_with_" + sys.argv[1]]
    initializer()  # the parent logs too, to the same file
    context = multiprocessing.get_context(sys.argv[2])
    pool = context.Pool({processes}, initializer=initializer)
    results = pool.map_async(work, range({processes}))
    logging.getLogger("parent").info("p.0 %s", PAYLOAD)
    print(sorted(results.get(timeout=30)))
    pool.close()  # not terminate(): workers exit normally and flush
    pool.join()
    logging.shutdown()
"""


@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
@pytest.mark.parametrize(
    ("recipe", "config"),
    [("dict_config", "file"), ("dict_config", "queue"), ("install", "file")],
)
def test_fresh_interpreter_children_append_every_record_once(
    start_method: str, recipe: str, config: str, tmp_path: Path
) -> None:
    """Pool processes configured by the recipe, and the parent, append to one
    file: every record is there once and whole."""
    script = SCRIPT.format(
        config=repr(CONFIGS[config]), records=RECORDS, processes=PROCESSES
    )
    (tmp_path / "recipe.py").write_text(script)
    outcome = run_ok(
        "import runpy, sys; sys.argv[1:] = "
        f"[{recipe!r}, {start_method!r}]; "
        "runpy.run_path('recipe.py', run_name='__main__')",
        cwd=tmp_path,
    )
    assert f"{list(range(PROCESSES))}\n" == outcome.stdout
    lines = (tmp_path / "app.log").read_text().splitlines()
    payload = " " + "x" * 300
    torn = [line for line in lines if not line.endswith(payload)]
    assert [] == torn
    ids = [line.split(" ")[1] for line in lines]
    expected = {f"w{w}.{n}" for w in range(PROCESSES) for n in range(RECORDS)}
    assert expected | {"p.0"} == set(ids)
    assert len(ids) == len(set(ids))
    assert len({line.split(" ")[0] for line in lines}) >= 2  # several processes


def test_spawned_child_without_the_recipe_has_no_handlers(tmp_path: Path) -> None:
    """Without the recipe a spawned child's records go nowhere but
    logging.lastResort: it does not inherit the parent's configuration."""
    (tmp_path / "bare.py").write_text(
        "import logging, multiprocessing\n"
        "def child():\n"
        "    print(logging.getLogger().handlers)\n"
        "if __name__ == '__main__':\n"
        "    logging.basicConfig(filename='app.log')\n"
        "    process = multiprocessing.get_context('spawn').Process(target=child)\n"
        "    process.start()\n"
        "    process.join(30)\n"
    )
    outcome = run_ok(
        "import runpy; runpy.run_path('bare.py', run_name='__main__')", cwd=tmp_path
    )
    assert "[]\n" == outcome.stdout
