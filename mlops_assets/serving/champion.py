"""The model that serves: the registry's `champion`, loaded whole, then swapped in by one assignment.

`load_champion` resolves the alias to a version once and loads that version (`models:/<name>/<version>`,
never the alias twice: the alias may move in between). The pyfunc is unwrapped to its bundle (a network's
`ModelBundle` or the trees' `BoostedModel`, both with the training preprocessor) so a request pays for
neither pyfunc's input checks nor pandas conversions it does not need. The network runs as a TorchScript
trace, and for a few rows (one flight) in numpy (serving/network.py), when that version's numpy network
agrees with the model; the trees score the preprocessed arrays directly, a few rows through their arrays
(serving/trees.py) when those agree with scikit-learn's.

`ChampionHolder` polls the alias from a background thread; when the version changes it loads the new
model completely (weights, preprocessing, a warm-up prediction) and only then replaces the reference that
requests read. A request reads the reference once and scores with that object to the end, so requests in
flight finish on the old model, new ones start on the new one, and none waits or fails.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from mlops_assets.resources.tracking import MlflowResource
from mlops_assets.serving.features import ModelInputs
from mlops_assets.serving.network import NUMPY_ROWS, TOLERANCE, NumpyNetwork, max_difference
from mlops_assets.serving.trees import COMPILED_ROWS, CompiledTrees
from mlops_assets.training.registry import CHAMPION, DEFAULT_THRESHOLD, alias_version, decision_threshold

log = logging.getLogger("mlops.serving")

FEATURE_SERVICE_TAG = "feature_service"
DEFAULT_FEATURE_SERVICE = "flight_delay_v1"


@dataclass(frozen=True)
class Champion:
    """One loaded model version and everything a request needs from it."""

    version: str
    model_uri: str
    run_id: str
    feature_service: str
    threshold: float
    threshold_source: str  # "model_version_tag" or "service_default"
    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    vocabulary: Mapping[str, tuple[str, ...]]
    loaded_at: dt.datetime
    inputs: ModelInputs = field(repr=False)
    predict_arrays: Callable[[np.ndarray, np.ndarray], np.ndarray] = field(repr=False)

    def score(self, online: dict[str, list]) -> np.ndarray:
        """Probability of a late arrival for each row of online feature columns (Feast's to_dict())."""
        return self.predict_arrays(*self.inputs.transform(online))


def registry_client(mlflow: MlflowResource):
    """An MlflowClient of the resource's store that only reads. (`MlflowResource.client()` also creates
    the training experiment when it is missing: a serving process should change nothing there.)"""
    import mlflow as mlflow_api
    from mlflow import MlflowClient

    # pyfunc.load_model resolves models:/ URIs through the module-level registry URI
    mlflow_api.set_tracking_uri(mlflow.tracking_uri)
    mlflow_api.set_registry_uri(mlflow.tracking_uri)
    return MlflowClient(tracking_uri=mlflow.tracking_uri, registry_uri=mlflow.tracking_uri)


def load_champion(
    mlflow: MlflowResource, default_threshold: float = DEFAULT_THRESHOLD, version: str | None = None
) -> Champion | None:
    """The version the `champion` alias names now (or `version`), loaded; None when there is none."""
    import mlflow as mlflow_api

    client = registry_client(mlflow)
    version = version or alias_version(client, mlflow.model_name, CHAMPION)
    if version is None:
        return None
    details = client.get_model_version(mlflow.model_name, version)
    uri = f"models:/{mlflow.model_name}/{version}"
    bundle = mlflow_api.pyfunc.load_model(uri).unwrap_python_model().bundle
    threshold, source = decision_threshold(details.tags, default_threshold)
    prep = bundle.preprocessor
    if hasattr(bundle, "predict_arrays"):  # boosted trees (ml/boosting.py) score the arrays themselves
        predict_arrays = _one_openmp_thread(bundle.predict_arrays)
        few_rows = _compiled_trees(bundle, prep)
        if few_rows is not None:
            predict_arrays = _by_rows(few_rows, predict_arrays, COMPILED_ROWS)
    else:
        predict_arrays = _torch_network(bundle.model, prep)
        few_rows = _numpy_network(bundle.model.eval(), prep)
        if few_rows is not None:
            predict_arrays = _by_rows(few_rows, predict_arrays)
    champion = Champion(
        version=str(version),
        model_uri=uri,
        run_id=str(details.run_id),
        feature_service=details.tags.get(FEATURE_SERVICE_TAG) or DEFAULT_FEATURE_SERVICE,
        threshold=threshold,
        threshold_source=source,
        categorical=tuple(prep.categorical),
        numeric=tuple(prep.numeric),
        vocabulary={c: tuple(prep.vocabulary[c]) for c in prep.categorical},
        loaded_at=dt.datetime.now(dt.UTC),
        inputs=ModelInputs(prep),
        predict_arrays=predict_arrays,
    )
    _warm_up(champion)
    return champion


def _numpy_network(model, prep) -> NumpyNetwork | None:
    """The network in numpy (serving/network.py: one flight in a fraction of the trace's time), if it
    gives the eager model's probabilities within TOLERANCE on random batches; else None."""
    try:
        network = NumpyNetwork.from_model(model)
        difference = max_difference(network, model, prep.cardinalities, prep.numeric_width)
    except Exception as error:  # a network this version cannot run: the trace serves
        log.warning(f"no numpy network: {error}")
        return None
    if not difference <= TOLERANCE:
        log.warning(f"no numpy network: it differs from the model by {difference:.3g}")
        return None
    return network


def _compiled_trees(bundle, prep) -> Callable[[np.ndarray, np.ndarray], np.ndarray] | None:
    """The boosted model with its trees as arrays (serving/trees.py: one flight in a fraction of
    scikit-learn's per-tree loop), if they give scikit-learn's probabilities; else None."""
    from mlops_assets.ml.boosting import design_matrix

    try:
        trees = CompiledTrees.from_model(bundle.trees, len(prep.categorical) + prep.numeric_width)
    except Exception as error:  # another scikit-learn's internals: its own path serves
        log.warning(f"no compiled trees: {error}")
        return None

    def predict_arrays(codes: np.ndarray, numbers: np.ndarray) -> np.ndarray:
        return bundle.calibration.apply(trees(design_matrix(codes, numbers)))

    return predict_arrays


def _one_openmp_thread(predict: Callable) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """`predict` with scikit-learn's OpenMP loops on one thread. Its trees are walked one at a time, each
    a parallel loop: between requests the pool's threads go to sleep, and waking them for each of 370
    trees made a batch of 100 take 19.3 ms with two threads against 8.5 ms with one, 100 ms apart
    (bench/trees_bench.py)."""
    from threadpoolctl import ThreadpoolController

    controller = ThreadpoolController()

    def predict_arrays(codes: np.ndarray, numbers: np.ndarray) -> np.ndarray:
        with controller.limit(limits=1, user_api="openmp"):
            return predict(codes, numbers)

    return predict_arrays


def _by_rows(
    few: Callable, many: Callable, rows: int = NUMPY_ROWS
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """`few` for up to `rows` rows (one flight: numpy's few operations beat torch's dispatch or
    scikit-learn's loop over its trees), `many` beyond (a batch)."""

    def predict_arrays(codes: np.ndarray, numbers: np.ndarray) -> np.ndarray:
        return few(codes, numbers) if len(codes) <= rows else many(codes, numbers)

    return predict_arrays


def _torch_network(model, prep) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The network in torch: its TorchScript trace (or the eager model), as the service ran it before."""
    import torch

    traced = _traced(model.eval(), prep)

    @torch.inference_mode()
    def predict_arrays(codes: np.ndarray, numbers: np.ndarray) -> np.ndarray:
        # as mlops_assets.ml.fit.predict_tensors: sigmoid of the logits, in float64
        logits = traced(torch.from_numpy(codes), torch.from_numpy(numbers))
        return torch.sigmoid(logits).numpy().astype("float64")

    return predict_arrays


def _traced(model, prep):
    """The network as a TorchScript trace: one flight runs ~66 small nn.Module calls (5 networks of
    embeddings, linear and batch-norm layers); the trace runs the same operations without the Python
    dispatch around each (0.7 -> 0.2 ms here). Not frozen: freezing folds batch norm into the linear
    layers and moves results by ~1e-7. The trace must give bit-identical logits on a few random batches,
    else the eager model serves."""
    import torch

    generator = torch.Generator().manual_seed(0)

    def batch(rows: int):
        codes = [torch.randint(0, c, (rows,), generator=generator) for c in prep.cardinalities]
        return torch.stack(codes, 1), torch.randn(rows, prep.numeric_width, generator=generator)

    try:
        with torch.inference_mode(), warnings.catch_warnings():
            # torch 2.13 marks trace deprecated and points to torch.export; measured here, an exported
            # module runs one flight slower than the eager model (1.3 ms), the trace 5x faster.
            warnings.simplefilter("ignore", DeprecationWarning)
            traced = torch.jit.trace(model, batch(1), check_trace=False)
            for rows in (1, 2, 7, 100):
                example = batch(rows)
                if not torch.equal(traced(*example), model(*example)):
                    raise ValueError(f"the trace differs from the model on {rows} rows")
    except Exception as error:  # a model the tracer cannot follow still serves, only slower
        log.warning(f"serving the eager model: {error}")
        return model
    return traced


def _warm_up(champion: Champion) -> None:
    """One prediction before the swap, so the first request is not the one that pays for lazy setup."""
    row = {c: [champion.vocabulary[c][0] if champion.vocabulary[c] else None] for c in champion.categorical}
    row.update({c: [None] for c in champion.numeric})
    probability = champion.score(row)
    if probability.shape != (1,) or not np.isfinite(probability).all():
        raise RuntimeError(f"version {champion.version} does not score: {probability!r}")


class ChampionHolder:
    """The current champion, and a background thread that swaps in a new one when the alias moves."""

    def __init__(
        self,
        mlflow: MlflowResource,
        default_threshold: float = DEFAULT_THRESHOLD,
        poll_interval_s: float = 2.0,
        on_swap: Callable[[], None] | None = None,
    ) -> None:
        self._mlflow = mlflow
        self._on_swap = on_swap
        self._default_threshold = default_threshold
        self._poll_interval_s = poll_interval_s
        self._current: Champion | None = None
        self._failed: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = None
        self.last_error: str | None = None
        self.swaps = 0

    @property
    def failed_versions(self) -> frozenset[str]:
        """Versions that failed to load (the metrics count them)."""
        return frozenset(self._failed)

    @property
    def current(self) -> Champion | None:
        """The champion to score with; read once per request (a reference read is atomic)."""
        return self._current

    def check(self) -> bool:
        """Load the alias's version if it is not the one serving; True when a new champion took over.

        The alias going away keeps the current model: a registry mistake must not take the service down.
        A version that fails to load is logged once and retried on every poll (a partial upload may
        complete), while the old champion keeps serving."""
        if self._client is None:
            self._client = registry_client(self._mlflow)
        version = alias_version(self._client, self._mlflow.model_name, CHAMPION)
        current = self._current
        if version is None or (current is not None and version == current.version):
            return False
        try:
            champion = load_champion(self._mlflow, self._default_threshold, version)
        except Exception as error:  # a bad version must never stop the service
            if version not in self._failed:
                log.exception(f"champion version {version} failed to load; keeping the current model")
                self._failed.add(version)
            self.last_error = f"version {version}: {error}"
            return False
        if champion is None:
            return False
        self._current = champion  # the swap: one reference assignment
        self.swaps += 1
        if self._on_swap is not None:
            self._on_swap()
        self.last_error = None
        previous = current.version if current else None
        log.info(f"champion is now version {champion.version} (was {previous})")
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="champion-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self._poll_interval_s):
            try:
                self.check()
            except Exception as error:  # the registry is unreachable: keep serving, try again
                self.last_error = f"registry: {error}"
                log.warning(f"could not poll the registry: {error}")
