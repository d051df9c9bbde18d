from __future__ import annotations

import pytest
from sklearn.datasets import load_iris

from localenv.models import CLASS_NAMES, SKLEARN_SERVER, XGBOOST_SERVER, BadInput, Model

SEED_SAMPLE = [6.8, 2.8, 4.8, 1.4]
"""The seed's fortio payload: a versicolor (class 1) by its measurements."""


@pytest.mark.parametrize("implementation", [SKLEARN_SERVER, XGBOOST_SERVER])
def test_each_model_calls_the_seed_sample_versicolor(models: dict[str, Model], implementation: str) -> None:
    [probabilities] = models[implementation].predict_proba([SEED_SAMPLE])
    assert len(probabilities) == 3
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-6)
    assert CLASS_NAMES[probabilities.index(max(probabilities))] == "versicolor"
    assert max(probabilities) > 0.75


def test_the_two_models_are_different_models(models: dict[str, Model]) -> None:
    sklearn = models[SKLEARN_SERVER].predict_proba([SEED_SAMPLE])[0]
    xgboost = models[XGBOOST_SERVER].predict_proba([SEED_SAMPLE])[0]
    assert sklearn[1] == pytest.approx(0.80, abs=0.02)
    assert xgboost[1] == pytest.approx(0.98, abs=0.02)
    assert models[SKLEARN_SERVER].image != models[XGBOOST_SERVER].image


@pytest.mark.parametrize("implementation", [SKLEARN_SERVER, XGBOOST_SERVER])
def test_models_classify_iris_well(models: dict[str, Model], implementation: str) -> None:
    X, y = load_iris(return_X_y=True)
    rows = [[float(v) for v in row] for row in X]
    predicted = [p.index(max(p)) for p in models[implementation].predict_proba(rows)]
    assert sum(int(a == b) for a, b in zip(predicted, y, strict=True)) / len(y) >= 0.95


def test_one_typical_flower_of_each_class(models: dict[str, Model]) -> None:
    flowers = {"setosa": [5.1, 3.5, 1.4, 0.2], "versicolor": [6.0, 2.9, 4.5, 1.5], "virginica": [6.9, 3.1, 5.8, 2.2]}
    for model in models.values():
        answers = model.predict_proba(list(flowers.values()))
        assert [CLASS_NAMES[p.index(max(p))] for p in answers] == list(flowers)


@pytest.mark.parametrize("rows", [[], [[1.0, 2.0, 3.0]], [[1, 2, 3, "4"]], "x", [[1, 2, 3, True]],
                                  [[1.0, 2.0, 3.0, float("nan")]]])
def test_bad_rows_are_refused(models: dict[str, Model], rows: object) -> None:
    with pytest.raises(BadInput):
        models[SKLEARN_SERVER].predict_proba(rows)  # type: ignore[arg-type]
