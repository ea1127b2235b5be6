"""Writing a generated dataset in WoodScape's layout: files, splits, card, resumable generation."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from heal_swin.data.classes import WOODSCAPE_CLASSES
from heal_swin.data.synthetic.render import render_scene
from heal_swin.data.synthetic.rig import CAMERA_NAMES, FULL_SIZE, rig_cameras, scene_camera
from heal_swin.data.synthetic.scene import make_scene
from heal_swin.io import atomic_write_bytes

__all__ = [
    "GENERATOR_VERSION",
    "SynthConfig",
    "dataset_card",
    "generate",
    "iter_cameras",
    "render_scene_index",
    "sample_stem",
    "scene_complete",
    "split_scenes",
    "write_scene",
]

GENERATOR_VERSION = 1
CARD_NAME = "dataset_card.json"


@dataclass(frozen=True)
class SynthConfig:
    """Settings of one generated dataset (recorded in its card; a resume must match them)."""

    scenes: int = 200
    seed: int = 0
    width: int = FULL_SIZE[0]
    height: int = FULL_SIZE[1]
    cameras: tuple[str, ...] = CAMERA_NAMES
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    png_compression: int = 1

    def matches(self, card: dict) -> bool:
        g = card.get("generator", {})
        return (
            g.get("version") == GENERATOR_VERSION
            and g.get("seed") == self.seed
            and g.get("width") == self.width
            and g.get("height") == self.height
            and tuple(g.get("cameras", ())) == tuple(self.cameras)
        )


_DIRS = {
    "image": ("rgb_images", ".png"),
    "label": ("semantic_annotations/gtLabels", ".png"),
    "rgb_label": ("semantic_annotations/rgbLabels", ".png"),
    "depth": ("depth_maps/raw_data", ".npy"),
    "calibration": ("calibration", ".json"),  # written last: marks the camera as complete
}


def sample_stem(scene: int, camera: str) -> str:
    return f"{scene:05d}_{camera}"


def _paths(root: Path, stem: str) -> dict[str, Path]:
    return {k: root / sub / f"{stem}{ext}" for k, (sub, ext) in _DIRS.items()}


def scene_complete(root: Path, scene: int, cameras: Sequence[str]) -> bool:
    return all(p.exists() for c in cameras for p in _paths(Path(root), sample_stem(scene, c)).values())


def _png(
    img: np.ndarray, level: int, strategy: int = cv2.IMWRITE_PNG_STRATEGY_DEFAULT, filt: str | None = None
) -> bytes:
    params = [cv2.IMWRITE_PNG_COMPRESSION, level, cv2.IMWRITE_PNG_STRATEGY, strategy]
    if filt is not None and hasattr(cv2, "IMWRITE_PNG_FILTER"):  # OpenCV >= 4.10: skip adaptive filtering
        params += [cv2.IMWRITE_PNG_FILTER, getattr(cv2, f"IMWRITE_PNG_FILTER_{filt}")]
    ok, buf = cv2.imencode(".png", img, params)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _npy(arr: np.ndarray) -> bytes:
    import io

    f = io.BytesIO()
    np.save(f, arr, allow_pickle=False)
    return f.getvalue()


def _iter_scene(config: SynthConfig, scene: int):
    """Yield ``(camera name, rendered dict incl. its calibration)`` for every camera of a scene."""
    base = rig_cameras(config.width, config.height, config.cameras)
    layout_ss, noise_ss = np.random.SeedSequence([config.seed, scene]).spawn(2)
    sc = make_scene(np.random.default_rng(layout_ss), config.cameras)
    # one noise stream per camera *name*, so that --cameras subsets render identical images
    noise = {n: np.random.default_rng(s) for n, s in zip(CAMERA_NAMES, noise_ss.spawn(len(CAMERA_NAMES)))}
    for name, cam0 in base.items():
        cam = scene_camera(cam0, sc.jitter[name])
        res = render_scene(sc, cam, noise[name])
        res["camera"] = cam
        yield name, res


def render_scene_index(config: SynthConfig, scene: int) -> dict[str, dict]:
    """Render scene ``scene`` of the dataset for every camera (in memory)."""
    return dict(_iter_scene(config, scene))


def _write_camera(root: Path, config: SynthConfig, stem: str, res: dict) -> None:
    paths = _paths(root, stem)
    # Huffman-only + the "up" filter suits the noisy photographs (2x faster than deflate, about the
    # same size); RLE without filtering suits the piecewise-constant label maps
    atomic_write_bytes(
        paths["image"],
        _png(res["image"], config.png_compression, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY, "UP"),
    )
    atomic_write_bytes(
        paths["label"], _png(res["label"], config.png_compression, cv2.IMWRITE_PNG_STRATEGY_RLE, "NONE")
    )
    rgb_label = WOODSCAPE_CLASSES.colorize(res["label"])
    atomic_write_bytes(
        paths["rgb_label"], _png(rgb_label, config.png_compression, cv2.IMWRITE_PNG_STRATEGY_RLE, "NONE")
    )
    atomic_write_bytes(paths["depth"], _npy(res["depth"]))
    calib = res["camera"].to_dict()
    atomic_write_bytes(
        paths["calibration"], (json.dumps(calib, indent=2) + "\n").encode()
    )  # last: marks completion


_ENCODER: tuple[int, ThreadPoolExecutor] | None = None


def _encoder() -> ThreadPoolExecutor:
    """One encoder thread per process (a forked worker must not reuse its parent's executor)."""
    global _ENCODER
    if _ENCODER is None or _ENCODER[0] != os.getpid():
        _ENCODER = (os.getpid(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="synth-encode"))
    return _ENCODER[1]


def write_scene(root: Path, config: SynthConfig, scene: int) -> int:
    """Render and write one scene (all cameras); returns the number of images written.

    PNG encoding and writing of camera i run in a background thread while camera i + 1 is rendered
    (OpenCV and numpy release the GIL), so one process keeps about two cores busy.
    """
    pending = []
    try:
        for name, res in _iter_scene(config, scene):
            pending.append(_encoder().submit(_write_camera, root, config, sample_stem(scene, name), res))
    finally:
        for f in pending:
            f.result()  # re-raises write errors
    return len(pending)


def _worker(args: tuple[str, SynthConfig, int]) -> int:
    root, config, scene = args
    return write_scene(Path(root), config, scene)


def split_scenes(config: SynthConfig) -> dict[str, list[int]]:
    """Scene indices per split: a seeded permutation, fractions ``config.split`` (train, val, test)."""
    perm = np.random.default_rng(np.random.SeedSequence([config.seed, 0x5917])).permutation(config.scenes)
    n_val = round(config.split[1] * config.scenes)
    n_test = round(config.split[2] * config.scenes)
    if config.scenes >= 3:
        n_val, n_test = max(n_val, 1), max(n_test, 1)
    n_train = config.scenes - n_val - n_test
    return {
        "train": sorted(perm[:n_train].tolist()),
        "val": sorted(perm[n_train : n_train + n_val].tolist()),
        "test": sorted(perm[n_train + n_val :].tolist()),
    }


def dataset_card(config: SynthConfig, splits: dict[str, list[int]]) -> dict:
    return {
        "name": "heal-swin-synthetic",
        "format": "woodscape",
        "description": "Procedural street scenes ray cast through four WoodScape-style fisheye cameras "
        "(heal_swin.data.synthetic). Regenerate with the command below; same seed, same bytes.",
        "command": f"heal-swin data synth --out <ROOT> --scenes {config.scenes} --seed {config.seed} "
        f"--width {config.width} --height {config.height} --cameras {','.join(config.cameras)}",
        "generator": {
            "version": GENERATOR_VERSION,
            "seed": config.seed,
            "scenes": config.scenes,
            "width": config.width,
            "height": config.height,
            "cameras": list(config.cameras),
        },
        "layout": {k: sub for k, (sub, _) in _DIRS.items()},
        "sample_names": "NNNNN_CAM (scene index, camera FV/RV/MVL/MVR)",
        **WOODSCAPE_CLASSES.to_card(),
        "labels": "single-channel PNG of class ids; rgbLabels use the BGR colours above. Sky, buildings, "
        "sidewalks, poles, trees are void (0), as in WoodScape.",
        "depth": {
            "unit": "metre",
            "measured": "along the ray (Euclidean distance from the camera centre)",
            "dtype": "float32",
            "invalid": "inf (sky / no surface / beyond 1000 m)",
        },
        "green_strips": False,
        "splits": {k: len(v) * len(config.cameras) for k, v in splits.items()},
        "split_by": "scene (all cameras of a scene are in the same split)",
    }


def generate(
    out: str | Path,
    config: SynthConfig,
    workers: int = 1,
    progress: bool = True,
    overwrite: bool = False,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
) -> dict:
    """Generate (or complete) the dataset under ``out``. Returns a summary dict.

    Re-running with the same settings skips complete scenes; different settings on an existing
    dataset raise ``ValueError`` unless ``overwrite`` (which regenerates every scene).
    """
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    card_path = root / CARD_NAME
    if card_path.exists() and not overwrite:
        _refuse_mixing(card_path, config)
    todo = [s for s in range(config.scenes) if overwrite or not scene_complete(root, s, config.cameras)]
    skipped = config.scenes - len(todo)
    if skipped:
        log(f"synth: {skipped} complete scene(s) already in {root}, skipped")
    t0 = time.perf_counter()
    n_img = _render_scenes(root, config, todo, workers, _progress(len(todo) * len(config.cameras), progress))
    elapsed = time.perf_counter() - t0
    splits = split_scenes(config)
    for name, scenes in splits.items():
        lines = "".join(f"{sample_stem(s, c)}\n" for s in scenes for c in config.cameras)
        atomic_write_bytes(root / f"{name}.txt", lines.encode())
    atomic_write_bytes(card_path, (json.dumps(dataset_card(config, splits), indent=2) + "\n").encode())
    return {
        "root": str(root),
        "scenes": config.scenes,
        "rendered_scenes": len(todo),
        "skipped_scenes": skipped,
        "images": n_img,
        "seconds": elapsed,
        "images_per_second": n_img / elapsed if elapsed > 0 and n_img else None,
    }


def _refuse_mixing(card_path: Path, config: SynthConfig) -> None:
    """ValueError if the existing card was generated with other settings (an unreadable card is ignored)."""
    try:
        old = json.loads(card_path.read_text())
    except (OSError, json.JSONDecodeError):
        return
    if not config.matches(old):
        raise ValueError(
            f"{card_path}: existing dataset was generated with {old.get('generator')}; "
            f"refusing to mix with seed={config.seed} size={config.width}x{config.height} cameras={list(config.cameras)} "
            "(use another --out or --overwrite)"
        )


def _render_scenes(
    root: Path, config: SynthConfig, todo: list[int], workers: int, bar: Callable[[int | None], None]
) -> int:
    """Render and write the scenes ``todo`` (in ``workers`` processes); the number of images."""
    n_img = 0
    if workers > 1 and len(todo) > 1:
        import multiprocessing as mp

        ctx = mp.get_context("spawn" if sys.platform == "darwin" else "fork")
        with ctx.Pool(workers) as pool:
            for n in pool.imap_unordered(_worker, [(str(root), config, s) for s in todo]):
                n_img += n
                bar(n)
    else:
        for s in todo:
            n = write_scene(root, config, s)
            n_img += n
            bar(n)
    bar(None)
    return n_img


def _progress(total: int, enabled: bool) -> Callable[[int | None], None]:
    if not enabled or total == 0:
        return lambda n: None
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional: a plain counter on stderr
        done = [0]

        def step(n):
            if n is None:
                print(file=sys.stderr)
                return
            done[0] += n
            print(f"\rsynth: {done[0]}/{total} images", end="", file=sys.stderr, flush=True)

        return step
    bar = tqdm(total=total, unit="img", desc="synth")

    def step(n):
        if n is None:
            bar.close()
        else:
            bar.update(n)

    return step


def iter_cameras(cameras: str | Iterable[str]) -> tuple[str, ...]:
    """Parse ``FV,RV`` (or a sequence) into validated camera names."""
    names = tuple(
        c.strip().upper() for c in (cameras.split(",") if isinstance(cameras, str) else cameras) if c.strip()
    )
    bad = [c for c in names if c not in CAMERA_NAMES]
    if bad or not names:
        raise ValueError(
            f"cameras: expected a comma-separated subset of {','.join(CAMERA_NAMES)}, got {cameras!r}"
        )
    return names
