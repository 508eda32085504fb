"""Finds every appearance of one or more logo references in a frame, at any place, size and angle.

Two classical methods, chosen per reference by how much texture it has:

- keypoints (ORB, Hamming matching with Lowe's ratio test, a RANSAC homography): a textured logo
  is found under scale, rotation, perspective and partial occlusion, and the homography carries
  the reference's exact shape into the frame;
- multi-scale, multi-angle normalized template matching for a reference too flat to give
  keypoints (a plain disc, a word in one colour): slower and limited to the sampled scales and
  angles, so it is chosen only then, with one warning.

Frames are searched downscaled (longer side ``work_side``): the detector is meant to run on
every frame of a live 720p/1080p feed within a few tens of milliseconds on a small CPU.
Detections are returned in full-frame pixels.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from cleanfeed.engines.detect.reference import Reference

log = logging.getLogger(__name__)

KEYPOINTS = "keypoints"
REFERENCE_SIDES = ((480, 240), (320, 200), (210, 170), (140, 150), (95, 130), (64, 110))
"""The sizes (longer side, pixels) the reference's keypoints are taken at, and how many at each:
ORB's own pyramid spans little of a small image, so a small appearance needs a small reference."""
TEMPLATE = "template"


@dataclass(frozen=True)
class FinderConfig:
    """How hard the finder looks; the defaults are tuned for 0.4x-2.5x the reference's size."""

    work_side: int = 960
    """Frames are searched with their longer side downscaled to this (never upscaled)."""
    frame_features: int = 1500
    """ORB keypoints taken from each searched frame."""
    ratio: float = 0.8
    """Lowe's ratio test: a match is kept when its distance is below ``ratio`` x the runner-up's."""
    min_inliers: int = 7
    """A homography needs this many RANSAC inliers to count as a detection."""
    min_features: int = 60
    """A reference with fewer ORB keypoints than this (at 210 pixels on its longer side) is matched as a
    template instead: a plain shape's few corners all look alike, and their matches are chance."""
    min_scale: float = 0.3
    max_scale: float = 3.0
    """Sizes (relative to the reference) a detection may have; outside them it is a false match."""
    max_per_reference: int = 4
    """Appearances of one reference looked for in a frame."""
    min_similarity: float = 0.5
    """A keypoint detection's pixels, brought back into the reference's frame, must correlate with the
    reference at least this much (0..1): a cheap second opinion that lets ``min_inliers`` stay low."""
    local_side: int = 480
    """:meth:`LogoFinder.find_near` searches the region around a known appearance at up to this longer side."""
    local_features: int = 1000
    """ORB keypoints taken from each region :meth:`LogoFinder.find_near` searches."""
    ecc_iterations: int = 30
    """Most iterations of the ECC alignment that refines each new detection."""
    follow: bool = True
    """:meth:`LogoFinder.find_near` first aligns the reference's pixels directly (ECC) from where the appearance
    is predicted, and looks for keypoints only when that fails: the alignment is what a keypoint match is
    refined with anyway, so where it holds, the keypoints (two thirds of a local search's cost) add nothing."""
    follow_iterations: int = 15
    follow_min_correlation: float = 0.8
    """ECC's correlation (0..1, over the reference's pixels) a followed appearance needs: below it the logo is
    partly hidden, leaving, gone or moved beyond ECC's reach, and the keypoints decide."""
    template_threshold: float = 0.8
    """Template matching: the normalized correlation a match needs."""
    template_side: int = 480
    """Template matching searches frames downscaled to this longer side."""
    template_angles: tuple[float, ...] = (-30.0, -15.0, 0.0, 15.0, 30.0)
    template_scale_step: float = 1.2


@dataclass(frozen=True)
class Detection:
    """One appearance of a reference in a frame."""

    reference: int
    """Index of the reference in the finder's list."""
    name: str
    homography: np.ndarray
    """3x3 float64: reference pixels to frame pixels."""
    quad: np.ndarray
    """4x2 float32: the reference's corners (top-left, top-right, bottom-right, bottom-left) in the frame."""
    box: tuple[int, int, int, int]
    """The quad's bounding box (x0, y0, x1, y1), half-open, clipped to the frame."""
    score: float
    """Keypoints: RANSAC inliers; template: normalized correlation (0..1)."""
    method: str
    support: np.ndarray = field(repr=False, compare=False)
    """The reference's own mask (not a copy), warped by :meth:`mask`."""

    @property
    def centre(self) -> np.ndarray:
        return self.quad.mean(axis=0)

    def moved(self, dx: float, dy: float, width: int, height: int) -> Detection:
        """The same appearance shifted by (dx, dy) pixels: where it is predicted when it was not seen."""
        shift = np.array([[1, 0, dx], [0, 1, dy], [0, 0, 1]], np.float64)
        quad = self.quad + np.array([dx, dy], np.float32)
        x0, y0 = np.floor(quad.min(axis=0)).astype(int)
        x1, y1 = np.ceil(quad.max(axis=0)).astype(int)
        box = (max(0, int(x0)), max(0, int(y0)), min(width, int(x1)), min(height, int(y1)))
        return replace(self, homography=shift @ self.homography, quad=quad, box=box)

    def mask(self, width: int, height: int, grow: int = 0) -> np.ndarray:
        """HxW bool: the reference's pixels carried into the frame, grown by ``grow`` pixels.

        Only the detection's box (plus ``grow``) is warped: the rest of the frame costs nothing."""
        out = np.zeros((height, width), bool)
        x0, y0, x1, y1 = self.box
        x0, y0 = max(0, x0 - grow - 1), max(0, y0 - grow - 1)
        x1, y1 = min(width, x1 + grow + 1), min(height, y1 + grow + 1)
        if x1 <= x0 or y1 <= y0:
            return out
        shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64)
        warped = cv2.warpPerspective(self.support.view(np.uint8) * 255, shift @ self.homography, (x1 - x0, y1 - y0),
                                     flags=cv2.INTER_LINEAR, borderValue=0)
        region = warped > 0
        if grow > 0:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
            region = cv2.dilate(region.view(np.uint8), kernel).astype(bool)
        out[y0:y1, x0:x1] = region
        return out


@dataclass
class _Prepared:
    """A reference ready for matching: its keypoints (in reference pixels) or its templates."""

    reference: Reference
    method: str
    points: np.ndarray | None = None
    descriptors: np.ndarray | None = None
    sides: np.ndarray | None = None
    """Keypoints: the reference size (longer side, px) each keypoint was taken at."""
    scaled: dict[tuple[float, bool], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    """The reference's grey pixels and mask at the scales ECC and the grey check ask for, kept."""
    templates: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    """Template matching: (template gray, template mask, template pixels -> reference pixels 3x3)."""


class LogoFinder:
    """Finds references in frames of one size; build once per stream (references are analysed here)."""

    def __init__(self, references: Sequence[Reference], config: FinderConfig | None = None) -> None:
        self.config = config or FinderConfig()
        self.references = list(references)
        # few levels: the reference's keypoints already come at many sizes (REFERENCE_SIDES), so the
        # frame's pyramid only has to reach appearances larger than the largest of them
        self._orb = cv2.ORB_create(nfeatures=self.config.frame_features, scaleFactor=1.25, nlevels=4,
                                   edgeThreshold=15, patchSize=15, fastThreshold=10, scoreType=cv2.ORB_FAST_SCORE)
        self._local_orb = cv2.ORB_create(nfeatures=self.config.local_features, scaleFactor=1.25, nlevels=4, edgeThreshold=15, patchSize=15,
                                         fastThreshold=10, scoreType=cv2.ORB_FAST_SCORE)
        self._matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
        self.followed = 0
        """Appearances :meth:`find_near` found by following alone (no keypoints), since this finder was made."""
        self._prepared = [self._prepare(ref) for ref in self.references]

    def methods(self) -> list[str]:
        """The method chosen for each reference (``keypoints`` or ``template``)."""
        return [p.method for p in self._prepared]

    def _prepare(self, ref: Reference) -> _Prepared:
        gray = ref.gray
        # keypoints are taken from the reference at several sizes: a logo far smaller than its
        # reference has its texture only at the reference's coarse levels
        points, descs, sides = [], [], []
        longer = max(ref.size)
        for side, budget in REFERENCE_SIDES:
            orb = cv2.ORB_create(nfeatures=budget, scaleFactor=1.25, nlevels=2, edgeThreshold=15, patchSize=15,
                                 fastThreshold=10)
            scale = side / longer
            if scale > 2.0:
                continue
            img = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
            msk = cv2.resize(ref.mask.view(np.uint8), (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)
            msk = cv2.erode(msk, np.ones((3, 3), np.uint8))
            kps, d = orb.detectAndCompute(img, msk)
            if d is None:
                continue
            points.append(np.array([k.pt for k in kps], np.float32) / scale)
            descs.append(d)
            sides.append(np.full(len(kps), side, np.float32))
        count = _texture(gray, ref.mask)
        if count >= self.config.min_features and descs:
            return _Prepared(ref, KEYPOINTS, np.concatenate(points), np.concatenate(descs), sides=np.concatenate(sides))
        log.warning("logo %s has too few features for keypoint matching (%d < %d): falling back to template "
                    "matching (slower; sizes %.1fx-%.1fx, angles %s)", ref.name, count, self.config.min_features,
                    self.config.min_scale, self.config.max_scale,
                    "/".join(f"{a:g}" for a in self.config.template_angles))
        return _Prepared(ref, TEMPLATE)

    # -- search -----------------------------------------------------------------------------

    def find(self, frame: np.ndarray, known: Sequence[Detection] = ()) -> list[Detection]:
        """Every appearance of every reference in ``frame`` (HxWx3 RGB or HxW gray, uint8), except
        those whose centre lies in the box of a ``known`` appearance of the same reference (found
        already, by :meth:`find_near`: not refined and checked a second time)."""
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        height, width = gray.shape
        found: list[Detection] = []
        if any(p.method == KEYPOINTS for p in self._prepared):
            scale = min(1.0, self.config.work_side / max(width, height))
            # bilinear: at 0.5-0.75x it is three times cheaper than area averaging, and ORB smooths anyway
            small = gray if scale == 1.0 else cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
            kps, descs = self._orb.detectAndCompute(small, None)
            if descs is not None and len(kps) >= 4:
                pts = np.array([k.pt for k in kps], np.float32) / scale
                for index, prepared in enumerate(self._prepared):
                    if prepared.method == KEYPOINTS:
                        found += self._by_keypoints(index, prepared, pts, descs, width, height, 1 / scale,
                                                    self.config.max_per_reference, gray,
                                                    [d.box for d in known if d.reference == index])
        if any(p.method == TEMPLATE for p in self._prepared):
            for index, prepared in enumerate(self._prepared):
                if prepared.method == TEMPLATE:
                    found += self._by_template(index, prepared, gray, frame if frame.ndim == 3 else None)
        return found

    def find_near(self, frame: np.ndarray, previous: Sequence[Detection], margin: float = 0.5,
                  predicted: Sequence[Detection] | None = None) -> list[Detection] | None:
        """The appearances in ``previous`` (the last frame's) found again around where they were.

        The cheap step between full searches: each appearance is first followed by aligning the
        reference's pixels from where it is ``predicted`` (``previous`` moved on as it moved; default:
        where it was), see ``FinderConfig.follow``; failing that, only a region around it is searched
        for keypoints, at up to ``local_side`` pixels, where even a small logo keeps its texture. None
        when a previous appearance came from template matching (it has no cheap local search: search
        the frame)."""
        cfg = self.config
        if any(self._prepared[d.reference].method != KEYPOINTS for d in previous):
            return None
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        height, width = gray.shape
        found: list[Detection] = []
        for k, det in enumerate(previous):
            if cfg.follow:
                followed = self._follow(gray, predicted[k] if predicted is not None else det, width, height)
                if followed is not None:
                    self.followed += 1
                    found.append(followed)
                    continue
            x0, y0, x1, y1 = det.box
            mx, my = int((x1 - x0) * margin) + 8, int((y1 - y0) * margin) + 8
            x0, y0, x1, y1 = max(0, x0 - mx), max(0, y0 - my), min(width, x1 + mx), min(height, y1 + my)
            if x1 - x0 < 16 or y1 - y0 < 16:
                continue
            crop = gray[y0:y1, x0:x1]
            scale = min(1.0, cfg.local_side / max(crop.shape))
            small = crop if scale == 1.0 else cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            kps, descs = self._local_orb.detectAndCompute(small, None)
            if descs is None or len(kps) < cfg.min_inliers:
                continue
            pts = np.array([k.pt for k in kps], np.float32) / scale + np.array([x0, y0], np.float32)
            prepared = self._prepared[det.reference]
            # the reference's keypoints from the sizes near the appearance's (in the searched pixels)
            seen = max(float(np.ptp(det.quad[:, 0])), float(np.ptp(det.quad[:, 1]))) * scale
            assert prepared.sides is not None
            near = (prepared.sides <= seen * 2.5) & (prepared.sides >= seen / 2.5)
            found += self._by_keypoints(det.reference, prepared, pts, descs, width, height, 1 / scale, 1, gray,
                                        sizes=near if near.sum() >= 4 * cfg.min_inliers else None)
        return found

    def _follow(self, gray: np.ndarray, det: Detection, width: int, height: int) -> Detection | None:
        """``det`` aligned to this frame's pixels by ECC alone, or None when it does not hold there."""
        cfg = self.config
        prepared = self._prepared[det.reference]
        aligned = _align(gray, prepared, det.homography, det.quad, cfg.follow_iterations)
        if aligned is None:
            return None
        homography, quad, correlation = aligned
        if correlation < cfg.follow_min_correlation or not _plausible(quad, prepared.reference, cfg):
            return None
        if _gray_match(gray, prepared, homography) < cfg.min_similarity:
            return None
        return _detection(det.reference, prepared.reference, homography, quad, det.score, KEYPOINTS, width, height)

    def _by_keypoints(self, index: int, prepared: _Prepared, pts: np.ndarray, descs: np.ndarray,
                      width: int, height: int, pixel: float, limit: int, gray: np.ndarray | None = None,
                      known: Sequence[tuple[int, int, int, int]] = (), sizes: np.ndarray | None = None) -> list[Detection]:
        cfg = self.config
        assert prepared.descriptors is not None and prepared.points is not None
        ref_points, ref_descs = prepared.points, prepared.descriptors
        if sizes is not None:
            ref_points, ref_descs = ref_points[sizes], ref_descs[sizes]
        pairs = self._matcher.knnMatch(ref_descs, descs, k=2)
        good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < cfg.ratio * m[1].distance]
        # one match per frame keypoint: a bland one attracts the reference's similar keypoints from
        # all its sizes at once, and a consensus of many pairs on one point is a collapsed homography
        best: dict[int, cv2.DMatch] = {}
        for m in good:
            if m.trainIdx not in best or m.distance < best[m.trainIdx].distance:
                best[m.trainIdx] = m
        good = list(best.values())
        if len(good) < cfg.min_inliers:
            return []
        src = ref_points[[m.queryIdx for m in good]]
        dst = pts[[m.trainIdx for m in good]]
        out: list[Detection] = []
        alive = np.ones(len(good), bool)
        for _ in range(limit):
            if alive.sum() < cfg.min_inliers:
                break
            fitted = _fit(src[alive], dst[alive], prepared.reference, cfg, pixel)
            if fitted is None:
                break
            homography, inliers, quad = fitted
            idx = np.flatnonzero(alive)
            # whatever matched into this quad is spent: the next round looks elsewhere
            alive[idx[_inside(quad, dst[idx]) | inliers]] = False
            centre = quad.mean(axis=0)
            if any(b[0] <= centre[0] < b[2] and b[1] <= centre[1] < b[3] for b in known):
                continue
            if gray is not None:
                homography, quad = _refine(gray, prepared, homography, quad, cfg.ecc_iterations)
                if _gray_match(gray, prepared, homography) < cfg.min_similarity:
                    continue  # the keypoints agree on a place whose pixels are not the logo's
            out.append(_detection(index, prepared.reference, homography, quad, float(inliers.sum()), KEYPOINTS,
                                  width, height))
        return out

    def _templates(self, prepared: _Prepared, frame_scale: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        if prepared.templates:
            return prepared.templates
        cfg, ref = self.config, prepared.reference
        gray, mask = ref.gray, ref.mask.view(np.uint8) * 255
        scales: list[float] = []
        s = cfg.min_scale
        while s <= cfg.max_scale * 1.0001:
            scales.append(s)
            s *= cfg.template_scale_step
        rw, rh = ref.size
        for scale in scales:
            k = scale * frame_scale
            tw, th = round(rw * k), round(rh * k)
            if min(tw, th) < 12:
                continue
            for angle in cfg.template_angles:
                # reference pixels -> template pixels: scale about the centre, rotate, shift into view
                rot = cv2.getRotationMatrix2D((rw / 2, rh / 2), angle, k)
                cos, sin = abs(rot[0, 0]), abs(rot[0, 1])
                bw, bh = int(np.ceil(rw * cos + rh * sin)), int(np.ceil(rw * sin + rh * cos))
                rot[0, 2] += bw / 2 - rw / 2
                rot[1, 2] += bh / 2 - rh / 2
                t = cv2.warpAffine(gray, rot, (bw, bh), flags=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
                m = cv2.warpAffine(mask, rot, (bw, bh), flags=cv2.INTER_NEAREST)
                if cv2.countNonZero(m) < 16 or float(t[m > 0].std()) < 1.0:
                    continue  # a flat template correlates with nothing (its variance is zero)
                forward = np.vstack([rot, [0, 0, 1]])
                prepared.templates.append((t, m, forward))
        return prepared.templates

    def _by_template(self, index: int, prepared: _Prepared, gray: np.ndarray, rgb: np.ndarray | None) -> list[Detection]:
        cfg = self.config
        height, width = gray.shape
        scale = min(1.0, cfg.template_side / max(width, height))
        small = gray if scale == 1.0 else cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        candidates: list[tuple[float, int, int, np.ndarray]] = []
        for t, m, forward in self._templates(prepared, scale):
            if t.shape[0] > small.shape[0] or t.shape[1] > small.shape[1]:
                continue
            scores = cv2.matchTemplate(small, t, cv2.TM_CCOEFF_NORMED, mask=m)
            scores = np.nan_to_num(scores, nan=0.0, posinf=0.0, neginf=0.0)
            for _ in range(cfg.max_per_reference):
                _, best, _, (x, y) = cv2.minMaxLoc(scores)
                if best < cfg.template_threshold:
                    break
                candidates.append((float(best), x, y, forward))
                scores[max(0, y - t.shape[0] // 2):y + t.shape[0] // 2 + 1,
                       max(0, x - t.shape[1] // 2):x + t.shape[1] // 2 + 1] = 0
        out: list[Detection] = []
        for best, x, y, forward in sorted(candidates, key=lambda c: -c[0]):
            place = np.array([[1 / scale, 0, x / scale], [0, 1 / scale, y / scale], [0, 0, 1]], np.float64)
            homography = place @ forward
            quad = _corners(prepared.reference, homography)
            centre = quad.mean(axis=0)
            if any(_inside(d.quad, centre[None])[0] for d in out):
                continue  # the same appearance at a neighbouring scale or angle
            if rgb is not None and _colour_match(rgb, prepared.reference, homography) < cfg.template_threshold:
                continue  # the right shading in the wrong colours: a plain shape is found by chance in grey
            out.append(_detection(index, prepared.reference, homography, quad, best, TEMPLATE, width, height))
            if len(out) >= cfg.max_per_reference:
                break
        return out


def _texture(gray: np.ndarray, mask: np.ndarray) -> int:
    """How many keypoints the reference holds at one fixed size: a size-independent measure of texture
    (the keypoints of the upscaled copies of a small plain logo are its anti-aliased rim, many times over)."""
    scale = 210 / max(gray.shape)
    img = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    if scale > 1:  # an enlarged plain edge is a staircase of corners; blurred, it is an edge again
        img = cv2.GaussianBlur(img, (0, 0), scale * 0.5)
    msk = cv2.resize(mask.view(np.uint8), (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)
    orb = cv2.ORB_create(nfeatures=500, scaleFactor=1.25, nlevels=2, edgeThreshold=15, patchSize=15, fastThreshold=10)
    return len(orb.detect(img, cv2.erode(msk, np.ones((3, 3), np.uint8))))


def _fit(src: np.ndarray, dst: np.ndarray, ref: Reference, cfg: FinderConfig,
         pixel: float) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The transform from reference to frame that most matches agree on, as (homography, inlier
    flags, quad); None when no plausible one has ``min_inliers``.

    A homography has 8 degrees of freedom: a small or partly hidden logo whose few good matches
    sit on one word fits it badly (a folded quad), while a similarity (4) is still well posed.
    So the homography is tried first (perspective, for large appearances), then a similarity."""
    threshold = 3.0 * pixel
    homography, inliers = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, threshold, maxIters=1000, confidence=0.995)
    if homography is not None and int(inliers.sum()) >= cfg.min_inliers:
        quad = _corners(ref, homography)
        if _plausible(quad, ref, cfg):
            return homography, inliers.ravel().astype(bool), quad
    affine, inliers = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=threshold,
                                                  maxIters=1000, confidence=0.995)
    if affine is None or int(inliers.sum()) < cfg.min_inliers:
        return None
    homography = np.vstack([affine, [0.0, 0.0, 1.0]])
    quad = _corners(ref, homography)
    return (homography, inliers.ravel().astype(bool), quad) if _plausible(quad, ref, cfg) else None


def _scaled(prepared: _Prepared, k: float, eroded: bool) -> tuple[np.ndarray, np.ndarray]:
    """The reference's grey pixels and mask (eroded by one pixel, for ECC) at scale ``k``, kept."""
    key = (k, eroded)
    if key not in prepared.scaled:
        ref = prepared.reference
        w, h = ref.size
        size = (max(1, round(w * k)), max(1, round(h * k)))
        gray = cv2.resize(ref.gray, size, interpolation=cv2.INTER_AREA)
        mask = cv2.resize(ref.mask.view(np.uint8), size, interpolation=cv2.INTER_NEAREST)
        if eroded:
            mask = cv2.erode(mask, np.ones((3, 3), np.uint8))
        prepared.scaled[key] = (gray, mask)
    return prepared.scaled[key]


def _refine(gray: np.ndarray, prepared: _Prepared, homography: np.ndarray, quad: np.ndarray,
            iterations: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """The homography aligned to the pixels themselves (ECC), not only to the keypoints.

    A small appearance has few inliers, all inside it: the fitted homography can be off by several
    pixels at the corners, which the mask would leave uncovered. Direct alignment of the reference's
    pixels, seen at the appearance's size, fixes that; a result that wanders off is not taken."""
    aligned = _align(gray, prepared, homography, quad, iterations)
    return (homography, quad) if aligned is None else aligned[:2]


def _align(gray: np.ndarray, prepared: _Prepared, homography: np.ndarray, quad: np.ndarray,
           iterations: int) -> tuple[np.ndarray, np.ndarray, float] | None:
    """ECC from ``homography``: (homography, quad, correlation), or None when it cannot run, does not
    converge or wanders off."""
    ref = prepared.reference
    w, h = ref.size
    x0, y0 = np.floor(quad.min(axis=0)).astype(int) - 8
    x1, y1 = np.ceil(quad.max(axis=0)).astype(int) + 8
    x0, y0 = max(0, int(x0)), max(0, int(y0))
    x1, y1 = min(gray.shape[1], int(x1)), min(gray.shape[0], int(y1))
    size = max(float(np.sqrt(cv2.contourArea(quad) / (w * h))), 1e-3)
    k = min(1.0, size, 256 / max(w, h))  # the reference at about the appearance's size, at most 256 px
    k = float(2 ** (round(np.log2(k) * 4) / 4))  # in quarter octaves, so the scaled copies can be kept
    if x1 - x0 < 16 or y1 - y0 < 16 or min(w, h) * k < 12:
        return None
    template, mask = _scaled(prepared, k, True)
    to_template = np.diag([template.shape[1] / w, template.shape[0] / h, 1.0])
    c = min(1.0, k / size)  # the crop at the template's scale too: ECC's cost is the crop's pixels
    crop = gray[y0:y1, x0:x1]
    crop = np.ascontiguousarray(crop) if c == 1.0 else cv2.resize(crop, None, fx=c, fy=c, interpolation=cv2.INTER_AREA)
    shift = np.array([[c, 0, -x0 * c], [0, c, -y0 * c], [0, 0, 1]], np.float64)
    # ECC masks its second image, so the frame's crop is the first and the warp runs frame -> reference
    warp = np.linalg.inv(shift @ homography @ np.linalg.inv(to_template)).astype(np.float32)
    warp /= warp[2, 2]
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, 1e-3)
    try:
        correlation, warp = cv2.findTransformECC(crop, template, warp, cv2.MOTION_HOMOGRAPHY, criteria, mask, 3)
    except cv2.error:
        return None  # did not converge
    refined = np.linalg.inv(shift) @ np.linalg.inv(warp.astype(np.float64)) @ to_template
    new_quad = _corners(ref, refined)
    if not np.all(np.isfinite(new_quad)) or np.abs(new_quad - quad).max() > 0.25 * max(w, h) * size:
        return None
    return refined, new_quad, float(correlation)


def _gray_match(gray: np.ndarray, prepared: _Prepared, homography: np.ndarray) -> float:
    """Normalized correlation between the reference and the frame brought back into the reference's
    pixels (at most 128 px on the longer side: the test is of shape and shading, not detail)."""
    w, h = prepared.reference.size
    k = min(1.0, 128 / max(w, h))
    small, mask8 = _scaled(prepared, k, False)
    size = (small.shape[1], small.shape[0])
    back = cv2.warpPerspective(gray, np.diag([k, k, 1.0]) @ np.linalg.inv(homography), size, flags=cv2.INTER_AREA)
    mask = mask8 > 0
    # only what lies inside the frame: a logo leaving the frame is half logo, half nothing to compare
    ys, xs = np.mgrid[0:size[1], 0:size[0]].astype(np.float32)
    grid = np.stack([(xs + 0.5) / k, (ys + 0.5) / k], axis=-1).reshape(-1, 1, 2)
    where = cv2.perspectiveTransform(grid, homography).reshape(size[1], size[0], 2)
    mask &= (where[..., 0] >= 0) & (where[..., 1] >= 0) & (where[..., 0] < gray.shape[1]) & (where[..., 1] < gray.shape[0])
    if mask.sum() < 64:
        return 0.0
    a = back[mask].astype(np.float32)
    b = small[mask].astype(np.float32)
    a -= a.mean()
    b -= b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def _colour_match(rgb: np.ndarray, ref: Reference, homography: np.ndarray) -> float:
    """Normalized correlation, over the reference's pixels and all three channels, between the
    reference and the frame brought back into the reference's frame of pixels."""
    w, h = ref.size
    back = cv2.warpPerspective(rgb, homography, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    a = back[ref.mask].astype(np.float32).ravel()
    b = ref.rgb[ref.mask].astype(np.float32).ravel()
    a -= a.mean()
    b -= b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def _corners(ref: Reference, homography: np.ndarray) -> np.ndarray:
    w, h = ref.size
    corners = np.array([[[0, 0]], [[w, 0]], [[w, h]], [[0, h]]], np.float32)
    return cv2.perspectiveTransform(corners, homography).reshape(4, 2)


def _inside(quad: np.ndarray, points: np.ndarray) -> np.ndarray:
    contour = quad.reshape(-1, 1, 2).astype(np.float32)
    return np.array([cv2.pointPolygonTest(contour, (float(x), float(y)), False) >= 0 for x, y in points], bool)


def _plausible(quad: np.ndarray, ref: Reference, cfg: FinderConfig) -> bool:
    """A homography RANSAC fitted to chance matches folds, flips or stretches the logo beyond what a
    camera does; one whose quad is convex, unflipped and of a size looked for is kept."""
    if not np.all(np.isfinite(quad)) or not cv2.isContourConvex(quad.reshape(-1, 1, 2)):
        return False
    w, h = ref.size
    area = cv2.contourArea(quad)
    signed = 0.5 * float(np.sum(quad[:, 0] * np.roll(quad[:, 1], -1) - np.roll(quad[:, 0], -1) * quad[:, 1]))
    if signed <= 0:  # corners run clockwise in image coordinates; a mirror image turns them round
        return False
    if not cfg.min_scale**2 <= area / (w * h) <= cfg.max_scale**2:
        return False
    sides = np.linalg.norm(quad - np.roll(quad, -1, axis=0), axis=1) / np.array([w, h, w, h], np.float64)
    # perspective shrinks one side against its opposite; beyond 3:1 it is no camera, it is a fold
    return bool(sides.min() > 0 and sides.max() / sides.min() < 3.0 * 1.0)


def _detection(index: int, ref: Reference, homography: np.ndarray, quad: np.ndarray, score: float, method: str,
               width: int, height: int) -> Detection:
    x0, y0 = np.floor(quad.min(axis=0)).astype(int)
    x1, y1 = np.ceil(quad.max(axis=0)).astype(int)
    box = (max(0, int(x0)), max(0, int(y0)), min(width, int(x1)), min(height, int(y1)))
    return Detection(index, ref.name, homography, quad, box, score, method, ref.mask)
