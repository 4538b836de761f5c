"""Transfer-learning benchmark: pretrain on digits 0–4, fine-tune to digits 5–9 at 1, 5, 20 shots.

    python -m cnnlab.bench.finetune --seeds 0,1,2

Every strategy (head, partial, gradual, full) against training from scratch on the same few
images; test accuracy on digits 5–9 is averaged over the seeds (the seed changes the pretrained
source, the chosen shots and the initialisation). Writes the ``finetune`` section of
docs/BENCHMARKS.md. Runs in the working tree's ``data/``, ``models/`` and ``reports/`` (as the
pipeline does), reusing outputs that exist. About 8 minutes per seed on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

STRATEGIES = ("scratch", "head", "partial", "gradual", "full")
SHOTS = (1, 5, 20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args(argv)
    from hydra import compose, initialize_config_dir

    from ..stages.prepare import run as prepare_run
    from ..tasks.finetune import finetune, write_comparison
    from ..tasks.fit import fit
    from .report import write_section

    logging.disable(logging.WARNING)

    def cfg(*overrides: str):
        with initialize_config_dir(config_dir=str(Path("conf").resolve()), version_base="1.3"):
            return compose(config_name="config", overrides=[*overrides, "trainer.enable_progress_bar=false",
                                                             "trainer.enable_model_summary=false", "num_workers=0"])

    for ds in ("digits_0to4", "digits_5to9"):
        if not Path(f"data/prepared/{ds}").exists():
            prepare_run(cfg(f"data={ds}"))
    for seed in (int(s) for s in args.seeds.split(",")):
        if not Path(f"models/digits_0to4/lenet5/seed{seed}/best.ckpt").exists():
            fit(cfg("data=digits_0to4", f"seed={seed}"))
        for shots in SHOTS:
            for s in STRATEGIES:
                if not Path(f"models/digits_5to9/lenet5-ft-{s}/shots{shots}/seed{seed}/metrics.json").exists():
                    finetune(cfg("data=digits_5to9", f"finetune={s}", f"finetune.shots={shots}", f"seed={seed}"))
    _, table = write_comparison("models/digits_5to9", "reports/bench-finetune/digits_5to9", model="lenet5")
    body = ("## Transfer learning: digits 0–4 → digits 5–9 (LeNet-5)\n\n"
            f"Test accuracy on digits 5–9 (135 test images), mean over seeds {args.seeds}.\n\n" + table)
    print(body)
    write_section("finetune", body, command=f"python -m cnnlab.bench.finetune --seeds {args.seeds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
