"""Online segmentation: a River clusterer over scaled profile features, with stable segment ids
and readable descriptions.

Promises
--------
* :class:`Segmenter` follows River's clusterer API (``learn_one``, ``predict_one``) on the dicts
  of :func:`models.features.profile_features`; it is seeded, pickles, and passes
  ``river.checks``.
* Segment ids are stable: the inner clusterer's labels are mapped to ids by matching each new
  set of centroids to the previous one (minimum total distance over all assignments), so a
  label permutation inside the clusterer never renames a segment. With River's ``KMeans`` the
  labels do not permute, and the mapping stays the identity; the matching makes the promise
  independent of the clusterer.
* :meth:`Segmenter.describe` names each segment after the features where its centroid stands
  out from the population (in standard deviations), e.g. ``"high spend, shares often, prefers
  wechat"``.

Design: the scaler is River's ``StandardScaler`` learned on the same stream (its running mean
and variance move less and less as samples accumulate; ``freeze_scaler_after`` can stop it);
the clusterer is River's ``KMeans`` (its centroids and assignment), updated as sequential
(MacQueen) k-means: each centroid is the running mean of the samples assigned to it, with the
rate floored at ``halflife`` (a memory of about ``1 / halflife`` samples) so that it follows the
population as it is now, in the space as it is now. Measured on 20,000-user simulated worlds:
freezing the scaler after 5,000 samples with a floor of 0.001 left the centroids fitted to the
early population and an ARI of 0.56 to 0.68; a learning scaler with a floor of 0.002 to 0.02 gives
about 0.95 (``bench/README.md``). The initial centroids come
from the first ``warmup`` samples (k-means++ seeding and ten Lloyd iterations over them) rather
than from River's Gaussian draw, which leaves no dead segments.
"""

from __future__ import annotations

import copy
import itertools
import math
import random
from typing import Any

from river import base, cluster, preprocessing

from models.features import FEATURES, describe_direction


class Segmenter(base.Clusterer):
    """Online k-means segmentation with stable ids.

    ``_reservoir`` holds the first ``warmup`` raw samples until the centroids are seeded.

    Parameters
    ----------
    n_segments
        Number of segments (``NBA_SEGMENTS__N_SEGMENTS``; see the README for how it was chosen).
    halflife
        The floor of a centroid's learning rate (its rate is 1 / samples assigned, at least this).
    warmup
        Samples collected before the centroids are seeded (k-means++ over them).
    freeze_scaler_after
        Samples after which the feature scaler stops learning (``None``: it never stops).
    seed
        Seeds the k-means++ draw and the inner ``KMeans``.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(0)
    >>> seg = Segmenter(n_segments=2, warmup=20, seed=1)
    >>> for i in range(200):
    ...     hi = i % 2
    ...     seg.learn_one({"spend": hi * 5 + rng.random(), "share_rate": rng.random()})
    >>> high, low = {"spend": 5.5, "share_rate": 0.5}, {"spend": 0.5, "share_rate": 0.5}
    >>> seg.predict_one(high) != seg.predict_one(low)
    True
    """

    def __init__(
        self,
        n_segments: int = 5,
        halflife: float = 0.01,
        warmup: int = 500,
        freeze_scaler_after: int | None = None,
        seed: int = 42,
    ) -> None:
        self.n_segments = n_segments
        self.halflife = halflife
        self.warmup = warmup
        self.freeze_scaler_after = freeze_scaler_after
        self.seed = seed
        self.scaler = preprocessing.StandardScaler()
        self.kmeans: cluster.KMeans | None = None
        self.n_learned = 0
        self._reservoir: list[dict[str, float]] = []
        self._ids: dict[int, int] = {}
        """inner label -> stable segment id."""
        self._published: dict[int, dict[str, float]] = {}
        """stable id -> centroid (scaled) at the last :meth:`stabilize`."""
        self.counts: dict[int, int] = {}
        """inner label -> samples assigned so far (the running mean's denominator)."""
        self._fast: tuple[Any, ...] | None = None
        """Scoring vectors cached by :meth:`predict_one` (cleared by every change)."""
        self.sizes: dict[int, float] = {}
        """stable id -> decayed count of samples assigned (a share of recent training samples)."""

    # -- River API ----------------------------------------------------------------------------
    def learn_one(self, x: dict[str, float]) -> None:  # type: ignore[override]
        self._fast = None
        self.n_learned += 1
        if self.freeze_scaler_after is None or self.n_learned <= self.freeze_scaler_after:
            self.scaler.learn_one(x)
        if self.kmeans is None:
            self._reservoir.append(dict(x))
            if len(self._reservoir) >= self.warmup:
                self._seed_centroids()
            return
        z = self.scaler.transform_one(x)
        label = self.kmeans.predict_one(z)
        # sequential (MacQueen) k-means: a centroid is the running mean of its samples, with a
        # floor on the rate (``halflife``) so that it keeps following a changing population
        n = self.counts[label] = self.counts.get(label, 0) + 1
        rate = max(1.0 / n, self.halflife)
        center = self.kmeans.centers[label]
        for k in _keys(z, center):
            center[k] += rate * (z.get(k, 0.0) - center[k])
        sid = self._ids.get(label, label)
        for seg in self.sizes:
            self.sizes[seg] *= 1 - 1e-4
        self.sizes[sid] = self.sizes.get(sid, 0.0) + 1e-4

    def predict_one(self, x: dict[str, float]) -> int:  # type: ignore[override]
        """The stable segment id of ``x`` (0 before the model is seeded).

        The same nearest-centroid rule as ``KMeans.predict_one`` on the scaled ``x``, computed
        from vectors cached until the next ``learn_one`` (a snapshot that only scores builds
        them once): scoring is on the worker's per-event path.
        """
        if self.kmeans is None:
            return 0
        if self._fast is None:
            keys = sorted({k for c in self.kmeans.centers.values() for k in c} | set(self.scaler.means))
            means = [self.scaler.means.get(k, 0.0) for k in keys]
            inv_sd = [1 / math.sqrt(v) if (v := self.scaler.vars.get(k, 0.0)) > 0 else 0.0 for k in keys]
            centers = [(lab, [c.get(k, 0.0) for k in keys]) for lab, c in self.kmeans.centers.items()]
            self._fast = (keys, means, inv_sd, centers)
        keys, means, inv_sd, centers = self._fast
        get = x.get
        z = [(get(k, 0.0) - m) * s for k, m, s in zip(keys, means, inv_sd, strict=True)]
        best = int(min(centers, key=lambda lc: math.dist(z, lc[1]))[0])
        return self._ids.get(best, best)

    @property
    def ready(self) -> bool:
        return self.kmeans is not None

    # -- internals ----------------------------------------------------------------------------
    def _seed_centroids(self) -> None:
        rng = random.Random(self.seed)
        points = [self.scaler.transform_one(x) for x in self._reservoir]
        centers = [points[rng.randrange(len(points))]]
        while len(centers) < self.n_segments:
            d2 = [min(_dist2(p, c) for c in centers) for p in points]
            total = sum(d2)
            if total == 0:
                centers.append(points[rng.randrange(len(points))])
                continue
            r, acc = rng.random() * total, 0.0
            for p, d in zip(points, d2, strict=True):
                acc += d
                if acc >= r:
                    centers.append(p)
                    break
        for _ in range(10):  # Lloyd iterations over the warm-up samples
            groups: list[list[dict[str, float]]] = [[] for _ in centers]
            for p in points:
                groups[min(range(len(centers)), key=lambda i: _dist2(p, centers[i]))].append(p)
            centers = [_mean(g) if g else c for g, c in zip(groups, centers, strict=True)]
        km = cluster.KMeans(n_clusters=self.n_segments, halflife=self.halflife, seed=self.seed)
        for i, c in enumerate(centers):
            km.centers[i].update(c)
        self.counts = {i: len(g) for i, g in enumerate(groups)}
        self.kmeans = km
        self._reservoir = []
        self._ids = {i: i for i in range(self.n_segments)}
        self._published = {i: dict(km.centers[i]) for i in range(self.n_segments)}
        self.sizes = dict.fromkeys(range(self.n_segments), 1.0 / self.n_segments)

    def scaler_inverse(self, z: dict[str, float]) -> dict[str, float]:
        """Undo the scaling of ``z`` (a centroid back to original feature units)."""
        out = {}
        for k, v in z.items():
            mean = self.scaler.means.get(k, 0.0)
            sd = math.sqrt(self.scaler.vars.get(k, 0.0))
            out[k] = v * sd + mean if sd else mean + v
        return out

    def stabilize(self) -> dict[int, int]:
        """Re-match inner labels to stable ids by centroid distance; returns the mapping.

        Called before every snapshot is published. Brute force over assignments up to 8
        segments, greedy above.
        """
        if self.kmeans is None:
            return {}
        current = {label: dict(c) for label, c in self.kmeans.centers.items()}
        ids = list(self._published)
        labels = list(current)
        if len(labels) <= 8:
            best = min(
                itertools.permutations(ids, len(labels)),
                key=lambda perm: sum(
                    _dist2(current[lab], self._published[i]) for lab, i in zip(labels, perm, strict=True)
                ),
            )
            mapping = dict(zip(labels, best, strict=True))
        else:
            mapping, free = {}, set(ids)
            for lab in labels:
                i = min(free, key=lambda j: _dist2(current[lab], self._published[j]))
                mapping[lab] = i
                free.discard(i)
        self._ids = mapping
        self._fast = None
        self._published = {mapping[lab]: current[lab] for lab in labels}
        return mapping

    def scaled_centroids(self) -> dict[int, dict[str, float]]:
        """stable id -> centroid in the scaled space the clusterer works in."""
        if self.kmeans is None:
            return {}
        return {self._ids[lab]: dict(c) for lab, c in self.kmeans.centers.items()}

    def centroids(self) -> dict[int, dict[str, float]]:
        """stable id -> centroid in original feature units."""
        if self.kmeans is None:
            return {}
        return {self._ids[lab]: self.scaler_inverse(dict(c)) for lab, c in self.kmeans.centers.items()}

    def describe(self, top: int = 3, threshold: float = 0.5) -> dict[int, str]:
        """stable id -> a readable description of the segment's centroid.

        A centroid is described by the (at most ``top``) features where it stands furthest, at
        least ``threshold`` standard deviations, from the population: the mean of all centroids
        weighted by their samples.
        """
        if self.kmeans is None:
            return {}
        centers = {lab: dict(c) for lab, c in self.kmeans.centers.items()}
        total = sum(self.counts.get(lab, 0) for lab in centers) or 1
        mean = {
            k: sum(self.counts.get(lab, 0) * c.get(k, 0.0) for lab, c in centers.items()) / total
            for k in FEATURES
        }
        out = {}
        for lab, c in centers.items():
            diffs = [(k, c.get(k, 0.0) - mean[k]) for k in FEATURES]
            standout = sorted((kv for kv in diffs if abs(kv[1]) >= threshold), key=lambda kv: -abs(kv[1]))
            words = [describe_direction(k, v > 0) for k, v in standout[:top]]
            out[self._ids[lab]] = ", ".join(words) if words else "close to the average user"
        return dict(sorted(out.items()))

    def clone_for_scoring(self) -> Segmenter:
        """A copy to score with while this one keeps learning."""
        return copy.deepcopy(self)

    @classmethod
    def _unit_test_params(cls) -> Any:
        yield {"n_segments": 3, "warmup": 10}


def _keys(z: dict[str, float], center: dict[str, float]) -> set[str]:
    return {*z, *center}


def _mean(points: list[dict[str, float]]) -> dict[str, float]:
    keys = {k for p in points for k in p}
    return {k: sum(p.get(k, 0.0) for p in points) / len(points) for k in keys}


def _dist2(a: dict[str, float], b: dict[str, float]) -> float:
    return sum((a.get(k, 0.0) - b.get(k, 0.0)) ** 2 for k in {*a, *b})
