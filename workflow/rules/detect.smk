# Week 3, part 1 (cnnlab.detect): prepare the scenes → train / evaluate the localiser, the landmark
# regressor and the sliding-window classifier. Stages read conf/detect.yaml (their own entry config).
DETECT_DATASETS = ["scenes"]
DETECT_MODEL = "lenet5"          # backbone of the localiser and the landmark regressor
DETECT_CONF = ["conf/detect.yaml", "conf/data/{dataset}.yaml", f"conf/model/{DETECT_MODEL}.yaml",
               "conf/optim/adam.yaml", "conf/trainer/cpu.yaml"]


rule prepare_scenes:
    input:
        "data/raw/orl_faces",
        "conf/config.yaml",
        "conf/data/scenes.yaml",
        "src/cnnlab/stages/prepare.py",
    output:
        directory("data/prepared/scenes"),
    log:
        "logs/prepare-scenes.log",
    benchmark:
        "logs/bench/prepare-scenes.tsv"
    threads: 1
    shell:
        "python -m cnnlab.stages.prepare data=scenes{OVERRIDES} > {log} 2>&1"


ruleorder: prepare_scenes > prepare


rule train_localiser:
    input:
        data="data/prepared/{dataset}",
        conf=DETECT_CONF + ["conf/localiser/default.yaml"],
        code="src/cnnlab/stages/train_localiser.py",
    output:
        best=f"models/{{dataset}}/localiser/{DETECT_MODEL}/best.ckpt",
        last=f"models/{{dataset}}/localiser/{DETECT_MODEL}/last.ckpt",
        metrics=f"models/{{dataset}}/localiser/{DETECT_MODEL}/metrics.json",
    log:
        "logs/train_localiser-{dataset}.log",
    benchmark:
        "logs/bench/train_localiser-{dataset}.tsv"
    threads: 1
    shell:
        "python -m cnnlab.stages.train_localiser data={wildcards.dataset} model=" + DETECT_MODEL +
        " threads={threads}{OVERRIDES} > {log} 2>&1"


rule evaluate_localiser:
    input:
        ckpt=rules.train_localiser.output.best,
        data="data/prepared/{dataset}",
        code="src/cnnlab/stages/evaluate_localiser.py",
    output:
        metrics="reports/detection/{dataset}/localiser/metrics.json",
        pictures="reports/detection/{dataset}/localiser/predictions.png",
        errors="reports/detection/{dataset}/localiser/errors.png",
    log:
        "logs/evaluate_localiser-{dataset}.log",
    benchmark:
        "logs/bench/evaluate_localiser-{dataset}.tsv"
    threads: 1
    shell:
        "python -m cnnlab.stages.evaluate_localiser data={wildcards.dataset} model=" + DETECT_MODEL +
        " threads={threads}{OVERRIDES} > {log} 2>&1"


rule train_landmarks:
    input:
        data="data/prepared/{dataset}",
        conf=DETECT_CONF + ["conf/landmarks/default.yaml"],
        code="src/cnnlab/stages/train_landmarks.py",
    output:
        best=f"models/{{dataset}}/landmarks/{DETECT_MODEL}/best.ckpt",
        last=f"models/{{dataset}}/landmarks/{DETECT_MODEL}/last.ckpt",
        metrics=f"models/{{dataset}}/landmarks/{DETECT_MODEL}/metrics.json",
    log:
        "logs/train_landmarks-{dataset}.log",
    benchmark:
        "logs/bench/train_landmarks-{dataset}.tsv"
    threads: 1
    shell:
        "python -m cnnlab.stages.train_landmarks data={wildcards.dataset} model=" + DETECT_MODEL +
        " threads={threads}{OVERRIDES} > {log} 2>&1"


rule evaluate_landmarks:
    input:
        ckpt=rules.train_landmarks.output.best,
        data="data/prepared/{dataset}",
        code="src/cnnlab/stages/evaluate_landmarks.py",
    output:
        metrics="reports/detection/{dataset}/landmarks/metrics.json",
        pictures="reports/detection/{dataset}/landmarks/predictions.png",
        errors="reports/detection/{dataset}/landmarks/errors.png",
    log:
        "logs/evaluate_landmarks-{dataset}.log",
    benchmark:
        "logs/bench/evaluate_landmarks-{dataset}.tsv"
    threads: 1
    shell:
        "python -m cnnlab.stages.evaluate_landmarks data={wildcards.dataset} model=" + DETECT_MODEL +
        " threads={threads}{OVERRIDES} > {log} 2>&1"


rule train_windows:
    input:
        data="data/prepared/{dataset}",
        conf=DETECT_CONF + ["conf/windows/default.yaml"],
        code="src/cnnlab/stages/train_windows.py",
    output:
        best="models/{dataset}/windows/course/best.ckpt",
        last="models/{dataset}/windows/course/last.ckpt",
        metrics="models/{dataset}/windows/course/metrics.json",
    log:
        "logs/train_windows-{dataset}.log",
    benchmark:
        "logs/bench/train_windows-{dataset}.tsv"
    threads: 1
    shell:
        "python -m cnnlab.stages.train_windows data={wildcards.dataset} threads={threads}{OVERRIDES} > {log} 2>&1"


rule evaluate_windows:
    input:
        ckpt=rules.train_windows.output.best,
        data="data/prepared/{dataset}",
        code="src/cnnlab/stages/evaluate_windows.py",
    output:
        metrics="reports/detection/{dataset}/windows/metrics.json",
        pictures="reports/detection/{dataset}/windows/boxes.png",
        errors="reports/detection/{dataset}/windows/errors.png",
    log:
        "logs/evaluate_windows-{dataset}.log",
    benchmark:
        "logs/bench/evaluate_windows-{dataset}.tsv"
    threads: 1
    shell:
        "python -m cnnlab.stages.evaluate_windows data={wildcards.dataset} threads={threads}{OVERRIDES} > {log} 2>&1"
