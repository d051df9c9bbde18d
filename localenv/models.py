"""The two real models, trained at start on the iris data that ships with scikit-learn.

SKLEARN_SERVER serves a logistic regression, XGBOOST_SERVER a gradient-boosted tree classifier;
both answer `predict_proba` (three class probabilities: setosa, versicolor, virginica), as
Seldon's prepackaged servers do for the example's iris models. Training is deterministic.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from xgboost import XGBClassifier

CLASS_NAMES = ("setosa", "versicolor", "virginica")
FEATURES = 4
SKLEARN_SERVER = "SKLEARN_SERVER"
XGBOOST_SERVER = "XGBOOST_SERVER"


class Classifier(Protocol):
    def predict_proba(self, X: Any) -> Any: ...


class BadInput(ValueError):
    """The request's rows are not a non-empty list of rows of four numbers."""


@dataclass
class Model:
    """A trained classifier behind the name of the Seldon server that would serve it."""

    implementation: str
    image: str
    """What Seldon reports in `meta.requestPath` for this server."""
    classifier: Classifier
    lock: threading.Lock

    def predict_proba(self, rows: Sequence[Sequence[float]]) -> list[list[float]]:
        X = _matrix(rows)
        with self.lock:
            probabilities = self.classifier.predict_proba(X)
        return [[float(p) for p in row] for row in probabilities]


def _matrix(rows: Sequence[Sequence[float]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    if not isinstance(rows, list) or not rows:
        raise BadInput("data.ndarray must be a non-empty list of rows")
    for row in rows:
        if (not isinstance(row, list) or len(row) != FEATURES
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in row)):
            raise BadInput(f"each row must be a list of {FEATURES} numbers, got {row!r}")
    X = np.asarray(rows, dtype=np.float64)
    if not np.all(np.isfinite(X)):
        raise BadInput("features must be finite numbers")
    return X


def train_models() -> dict[str, Model]:
    """Both models, by implementation. Takes about a second."""
    X, y = load_iris(return_X_y=True)
    sklearn_model = LogisticRegression(max_iter=1000).fit(X, y)
    xgboost_model = XGBClassifier(n_estimators=50, max_depth=3, learning_rate=0.3, n_jobs=1,
                                  random_state=0, objective="multi:softprob").fit(X, y)
    return {
        SKLEARN_SERVER: Model(SKLEARN_SERVER, "seldonio/sklearnserver", sklearn_model, threading.Lock()),
        XGBOOST_SERVER: Model(XGBOOST_SERVER, "seldonio/xgboostserver", xgboost_model, threading.Lock()),
    }
