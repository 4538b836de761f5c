# Week 3, part 1 (cnnlab.detect): prepare the scenes → train / evaluate the localiser, the landmark
# regressor and the sliding-window classifier. Stages read conf/detect.yaml (their own entry config);
# rules follow common.smk's convention (Stage objects: overrides as params, computed deps).
DETECT_DATASETS = ["scenes"]
DETECT_MODEL = "lenet5"          # backbone of the localiser and the landmark regressor

_prepare_scenes = Stage("prepare", "data=scenes")


def _detect(name, *overrides):
    return Stage(name, "data={dataset}", *overrides, config_name="detect")


_train_localiser = _detect("train_localiser", f"model={DETECT_MODEL}")
_evaluate_localiser = _detect("evaluate_localiser", f"model={DETECT_MODEL}")
_train_landmarks = _detect("train_landmarks", f"model={DETECT_MODEL}")
_evaluate_landmarks = _detect("evaluate_landmarks", f"model={DETECT_MODEL}")
_train_windows = _detect("train_windows")
_evaluate_windows = _detect("evaluate_windows")


rule prepare_scenes:
    input:
        raw=by_content("data/raw/orl_faces"),
        **_prepare_scenes.deps,
    output:
        directory(str(rules.prepare.output[0]).format(dataset=DETECT_DATASETS[0])),  # the scenes
    log:
        "logs/prepare-scenes.log",
    benchmark:
        "logs/bench/prepare-scenes.tsv"
    params:
        args=_prepare_scenes.args,
        sources=_prepare_scenes.sources,
        raw=lambda w: workflow_io.digest(["data/raw/orl_faces"]),
    threads: 1
    shell:
        "python -m cnnlab.stages.prepare {params.args} > {log} 2>&1"


ruleorder: prepare_scenes > prepare


rule train_localiser:
    input:
        data=rules.prepare.output,
        **_train_localiser.deps,
    output:
        best=f"models/{{dataset}}/localiser/{DETECT_MODEL}/best.ckpt",
        last=f"models/{{dataset}}/localiser/{DETECT_MODEL}/last.ckpt",
        metrics=f"models/{{dataset}}/localiser/{DETECT_MODEL}/metrics.json",
        history=f"models/{{dataset}}/localiser/{DETECT_MODEL}/history.csv",
        curves=report(f"models/{{dataset}}/localiser/{DETECT_MODEL}/learning_curves.png", caption="../report/learning_curves.rst", category="detection", subcategory="{dataset} localiser"),
    log:
        "logs/train_localiser-{dataset}.log",
    benchmark:
        "logs/bench/train_localiser-{dataset}.tsv"
    params:
        args=_train_localiser.args,
        sources=_train_localiser.sources,
    threads: 1
    shell:
        "python -m cnnlab.stages.train_localiser {params.args} threads={threads} > {log} 2>&1"


rule evaluate_localiser:
    input:
        ckpt=rules.train_localiser.output.best,
        data=rules.prepare.output,
        **_evaluate_localiser.deps,
    output:
        metrics="reports/detection/{dataset}/localiser/metrics.json",
        details="reports/detection/{dataset}/localiser/details.json",
        pictures=report("reports/detection/{dataset}/localiser/predictions.png", caption="../report/localiser_pictures.rst", category="detection", subcategory="{dataset} localiser"),
        errors=report("reports/detection/{dataset}/localiser/errors.png", caption="../report/localiser_errors.rst", category="detection", subcategory="{dataset} localiser"),
    log:
        "logs/evaluate_localiser-{dataset}.log",
    benchmark:
        "logs/bench/evaluate_localiser-{dataset}.tsv"
    params:
        args=_evaluate_localiser.args,
        sources=_evaluate_localiser.sources,
    threads: 1
    shell:
        "python -m cnnlab.stages.evaluate_localiser {params.args} threads={threads} > {log} 2>&1"


rule train_landmarks:
    input:
        data=rules.prepare.output,
        **_train_landmarks.deps,
    output:
        best=f"models/{{dataset}}/landmarks/{DETECT_MODEL}/best.ckpt",
        last=f"models/{{dataset}}/landmarks/{DETECT_MODEL}/last.ckpt",
        metrics=f"models/{{dataset}}/landmarks/{DETECT_MODEL}/metrics.json",
        history=f"models/{{dataset}}/landmarks/{DETECT_MODEL}/history.csv",
        curves=report(f"models/{{dataset}}/landmarks/{DETECT_MODEL}/learning_curves.png", caption="../report/learning_curves.rst", category="detection", subcategory="{dataset} landmarks"),
    log:
        "logs/train_landmarks-{dataset}.log",
    benchmark:
        "logs/bench/train_landmarks-{dataset}.tsv"
    params:
        args=_train_landmarks.args,
        sources=_train_landmarks.sources,
    threads: 1
    shell:
        "python -m cnnlab.stages.train_landmarks {params.args} threads={threads} > {log} 2>&1"


rule evaluate_landmarks:
    input:
        ckpt=rules.train_landmarks.output.best,
        data=rules.prepare.output,
        **_evaluate_landmarks.deps,
    output:
        metrics="reports/detection/{dataset}/landmarks/metrics.json",
        details="reports/detection/{dataset}/landmarks/details.json",
        pictures=report("reports/detection/{dataset}/landmarks/predictions.png", caption="../report/landmarks_pictures.rst", category="detection", subcategory="{dataset} landmarks"),
        errors=report("reports/detection/{dataset}/landmarks/errors.png", caption="../report/landmarks_errors.rst", category="detection", subcategory="{dataset} landmarks"),
    log:
        "logs/evaluate_landmarks-{dataset}.log",
    benchmark:
        "logs/bench/evaluate_landmarks-{dataset}.tsv"
    params:
        args=_evaluate_landmarks.args,
        sources=_evaluate_landmarks.sources,
    threads: 1
    shell:
        "python -m cnnlab.stages.evaluate_landmarks {params.args} threads={threads} > {log} 2>&1"


rule train_windows:
    input:
        data=rules.prepare.output,
        **_train_windows.deps,
    output:
        best="models/{dataset}/windows/course/best.ckpt",
        last="models/{dataset}/windows/course/last.ckpt",
        metrics="models/{dataset}/windows/course/metrics.json",
        history="models/{dataset}/windows/course/history.csv",
        curves=report("models/{dataset}/windows/course/learning_curves.png", caption="../report/learning_curves.rst", category="detection", subcategory="{dataset} windows"),
    log:
        "logs/train_windows-{dataset}.log",
    benchmark:
        "logs/bench/train_windows-{dataset}.tsv"
    params:
        args=_train_windows.args,
        sources=_train_windows.sources,
    threads: 1
    shell:
        "python -m cnnlab.stages.train_windows {params.args} threads={threads} > {log} 2>&1"


rule evaluate_windows:
    input:
        ckpt=rules.train_windows.output.best,
        data=rules.prepare.output,
        **_evaluate_windows.deps,
    output:
        metrics="reports/detection/{dataset}/windows/metrics.json",
        details="reports/detection/{dataset}/windows/details.json",
        pictures=report("reports/detection/{dataset}/windows/boxes.png", caption="../report/windows_pictures.rst", category="detection", subcategory="{dataset} windows"),
        errors=report("reports/detection/{dataset}/windows/errors.png", caption="../report/windows_errors.rst", category="detection", subcategory="{dataset} windows"),
    log:
        "logs/evaluate_windows-{dataset}.log",
    benchmark:
        "logs/bench/evaluate_windows-{dataset}.tsv"
    params:
        args=_evaluate_windows.args,
        sources=_evaluate_windows.sources,
    threads: 1
    shell:
        "python -m cnnlab.stages.evaluate_windows {params.args} threads={threads} > {log} 2>&1"
