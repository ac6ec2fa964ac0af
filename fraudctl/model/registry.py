"""The model registry: ``models/<version>/`` in the stack's object store.

Each version holds ``model.skops`` (the classifier and its anomaly detector, serialized with
skops, which rebuilds objects from an allowlist of types instead of running pickle's arbitrary
code), ``model.skops.sha256`` (in ``sha256sum`` format) and ``manifest.json``: the sha256, the
feature list and version, the decision threshold, the metrics, the data window, the training
parameters and the drift reference. The manifest is written last, so a version without one is
an interrupted registration and is never listed or loaded.

Every load checks the artifact's sha256 against the manifest and refuses a mismatch, then
refuses any type in the artifact that is not on the allowlist below.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from fraudctl import errors, naming
from fraudctl.ports import ObjectMissing, ObjectStore

if TYPE_CHECKING:
    from fraudctl.model.serving import TrainedModel

ARTIFACT = "model.skops"
MANIFEST = "manifest.json"
# Types beyond skops' own defaults that the models fraudctl trains are made of. A type outside
# this list in an artifact means the artifact is not one of ours: refuse it.
TRUSTED_TYPES = frozenset({
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
})


@dataclass(frozen=True)
class ModelInfo:
    version: str
    manifest: dict[str, Any]

    @property
    def created_at(self) -> str:
        return str(self.manifest.get("created_at", ""))


def new_version(artifact: bytes, now: float | None = None) -> str:
    """``YYYYMMDD-HHMMSS-<6 hex of the artifact's sha256>``: sortable, and unique per content."""
    stamp = datetime.fromtimestamp(time.time() if now is None else now, UTC)
    return f"{stamp:%Y%m%d-%H%M%S}-{hashlib.sha256(artifact).hexdigest()[:6]}"


def serialize(classifier: Any, detector: Any | None) -> bytes:
    import skops.io

    artifact: bytes = skops.io.dumps({"classifier": classifier, "detector": detector})
    return artifact


class Registry:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    @staticmethod
    def _key(version: str, name: str) -> str:
        return f"{naming.MODELS_PREFIX}{version}/{name}"

    def register(self, artifact: bytes, manifest: dict[str, Any]) -> str:
        version = new_version(artifact)
        digest = hashlib.sha256(artifact).hexdigest()
        document = {**manifest, "version": version, "sha256": digest, "artifact": ARTIFACT,
                    "created_at": datetime.now(UTC).isoformat(timespec="seconds")}
        self.store.put(self._key(version, ARTIFACT), artifact)
        self.store.put(self._key(version, ARTIFACT + ".sha256"),
                       f"{digest}  {ARTIFACT}\n".encode())
        self.store.put(self._key(version, MANIFEST),
                       orjson.dumps(document, option=orjson.OPT_INDENT_2))
        return version

    def versions(self) -> list[ModelInfo]:
        """Registered versions, oldest first (version names sort by time)."""
        found = []
        for info in self.store.list(naming.MODELS_PREFIX):
            parts = info.key[len(naming.MODELS_PREFIX):].split("/")
            if len(parts) == 2 and parts[1] == MANIFEST:
                found.append(parts[0])
        return [self.info(version) for version in sorted(found)]

    def latest(self) -> ModelInfo | None:
        versions = self.versions()
        return versions[-1] if versions else None

    def info(self, version: str) -> ModelInfo:
        try:
            data = self.store.get(self._key(version, MANIFEST))
        except ObjectMissing:
            raise errors.ConfigError(f"no model version {version!r} in the registry",
                                     "see `fraudctl models list`") from None
        return ModelInfo(version, orjson.loads(data))

    def verify(self, version: str) -> tuple[ModelInfo, bytes]:
        """The version's manifest and artifact, refused unless the artifact's sha256 is the
        manifest's. Cheap: a swap checks this before it starts anything."""
        info = self.info(version)
        try:
            artifact = self.store.get(self._key(version, ARTIFACT))
        except ObjectMissing:
            raise errors.ModelRefused(f"model {version} has a manifest but no artifact",
                                      "register it again with `fraudctl retrain`") from None
        digest = hashlib.sha256(artifact).hexdigest()
        if digest != info.manifest["sha256"]:
            raise errors.ModelRefused(
                f"model {version}: artifact sha256 {digest[:12]}… does not match the "
                f"manifest's {info.manifest['sha256'][:12]}…; refusing to load it",
                "the artifact was changed after registration: retrain, or restore it from "
                "the bucket's previous object version")
        return info, artifact

    def load(self, version: str) -> TrainedModel:
        # skops (and scikit-learn under it) load only here, where a model is rebuilt.
        import skops.io

        from fraudctl.model.serving import TrainedModel


        info, artifact = self.verify(version)
        untrusted = set(skops.io.get_untrusted_types(data=artifact)) - TRUSTED_TYPES
        if untrusted:
            raise errors.ModelRefused(
                f"model {version} contains types fraudctl does not load: "
                f"{', '.join(sorted(untrusted))}", "only models fraudctl trained can serve")
        parts = skops.io.loads(artifact, trusted=sorted(TRUSTED_TYPES))
        manifest = info.manifest
        return TrainedModel(version=version, classifier=parts["classifier"],
                            detector=parts["detector"], threshold=float(manifest["threshold"]),
                            feature_names=list(manifest["features"]),
                            feature_version=str(manifest["feature_version"]))
