"""Synthetic fisheye benchmark: procedural street scenes ray cast through WoodScape-style cameras.

``heal-swin data synth --out data/synthetic --scenes 200 --seed 0`` renders each scene through the
four cameras of one vehicle (FV, RV, MVL, MVR) and writes WoodScape's layout::

    rgb_images/NNNNN_CAM.png                  8-bit BGR photograph (shading, fog, vignetting, noise)
    semantic_annotations/gtLabels/NNNNN_CAM.png   single-channel WoodScape class ids 0..9
    semantic_annotations/rgbLabels/NNNNN_CAM.png  the same in WoodScape's colours
    depth_maps/raw_data/NNNNN_CAM.npy         float32 metres along the ray, ``inf`` = sky (no hit)
    calibration/NNNNN_CAM.json                WoodScape calibration schema (per image)
    train.txt, val.txt, test.txt              sample stems (``NNNNN_CAM``), split by scene
    dataset_card.json                         classes, colours, depth convention, generator settings

Geometry (vehicle frame, ISO 8855: x forward, y left, z up, origin on the ground under the rear
axle): a straight road (z = 0) between raised sidewalks (z = curb height) whose edges are vertical
curb faces, building facades (vertical planes, one per side, cut into buildings of random length,
height and colour, some gaps), and objects as analytic primitives: yawed boxes (vehicles, bicycle
and motorcycle frames, sign plates), vertical cylinders (persons, riders, poles, tree trunks),
spheres (heads, tree crowns) and vertical discs (wheels, round signs). Shading: Lambert sun + sky
ambient, sun shadows of the objects on the ground (one shadow ray per ground pixel near a caster),
distance fog, vignetting, Gaussian sensor noise.

Speed: every intersection is vectorised over rays. Each camera's pixels are grouped into small
tiles with a bounding cone; a primitive is only tested against the rays of tiles whose cone meets
the primitive's bounding sphere. Rays, tiles and cones depend only on the intrinsics and are
cached per camera. Scenes are independent and seeded by ``(seed, scene index)``: the output does
not depend on the number of worker processes, and re-running skips complete scenes.

Modules: ``rig`` (the cameras), ``rays`` (tiled camera rays), ``primitives`` (shapes and their
ray intersections), ``scene`` (one random scene), ``render`` (ray casting and shading), ``writer``
(files, splits, card). No torch; numpy + OpenCV only.
"""

from heal_swin.data.synthetic.render import MAX_DEPTH, render_scene
from heal_swin.data.synthetic.rig import CAMERA_NAMES, FULL_SIZE, camera_rotation, rig_cameras, scene_camera
from heal_swin.data.synthetic.scene import Scene, make_scene
from heal_swin.data.synthetic.writer import (
    GENERATOR_VERSION,
    SynthConfig,
    dataset_card,
    generate,
    iter_cameras,
    render_scene_index,
    sample_stem,
    scene_complete,
    split_scenes,
    write_scene,
)

__all__ = [
    "CAMERA_NAMES",
    "FULL_SIZE",
    "GENERATOR_VERSION",
    "MAX_DEPTH",
    "Scene",
    "SynthConfig",
    "camera_rotation",
    "dataset_card",
    "generate",
    "iter_cameras",
    "make_scene",
    "render_scene",
    "render_scene_index",
    "rig_cameras",
    "sample_stem",
    "scene_camera",
    "scene_complete",
    "split_scenes",
    "write_scene",
]
