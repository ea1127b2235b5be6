"""The objects of one scene: vehicles, persons, two-wheelers, signs, trees and posts, placed without overlap."""

from __future__ import annotations

import math

import cv2
import numpy as np

from heal_swin.data.synthetic.primitives import Prim, box, cyl, disc, sphere

__all__ = [
    "BICYCLE", "CURB", "LANEMARKS", "MOTORCYCLE", "PERSON", "RIDER", "ROAD", "TRAFFIC_SIGN", "VEHICLES", "VOID",
    "hsv", "place_objects", "rand_color",
]  # fmt: skip

# WoodScape ids
VOID, ROAD, LANEMARKS, CURB, PERSON, RIDER, VEHICLES, BICYCLE, MOTORCYCLE, TRAFFIC_SIGN = range(10)


def hsv(h, s, v) -> np.ndarray:
    """RGB float32 0..1 of an HSV colour (OpenCV's 8-bit conversion)."""
    c = cv2.cvtColor(np.array([[[h * 179, s * 255, v * 255]]], np.uint8), cv2.COLOR_HSV2RGB)[0, 0]
    return c.astype(np.float32) / 255.0


def rand_color(rng, sat=(0.2, 0.9), val=(0.3, 0.95)) -> np.ndarray:
    """A random colour with saturation and value in the given ranges."""
    return hsv(rng.uniform(0, 1), rng.uniform(*sat), rng.uniform(*val))


class _Placer:
    """Rejects footprints (circles) overlapping each other or the ego vehicle."""

    def __init__(self) -> None:
        self.items: list[tuple[float, float, float]] = []

    def free(self, x, y, r) -> bool:
        if -1.6 - r < x < 4.4 + r and abs(y) < 1.3 + r:
            return False
        return all((x - a) ** 2 + (y - b) ** 2 > (r + c) ** 2 for a, b, c in self.items)

    def add(self, x, y, r) -> None:
        self.items.append((x, y, r))


def place_objects(
    rng: np.random.Generator, y_left: float, y_right: float, bld_left: float, bld_right: float
) -> list[Prim]:
    """The primitives of one scene between road edges ``y_left > 0 > y_right`` and the facades."""
    objs = _Objects(rng, y_left, y_right, bld_left, bld_right)
    objs.near_objects()
    objs.extras()
    return objs.prims


class _Objects:
    """Builds the primitives of the objects; each ``add_*`` draws its shape from ``rng``."""

    def __init__(
        self, rng: np.random.Generator, y_left: float, y_right: float, bld_left: float, bld_right: float
    ) -> None:
        self.rng, self.u = rng, rng.uniform
        self.y_left, self.y_right, self.bld_left, self.bld_right = y_left, y_right, bld_left, bld_right
        self.prims: list[Prim] = []
        self.place = _Placer()

    def near_xy(self, lo=4.0, hi=14.0):
        """A point around the vehicle at distance lo..hi (any direction; visible by some camera)."""
        a = self.u(0, 2 * math.pi)
        rr = self.u(lo, hi)
        return 1.4 + rr * math.cos(a), rr * math.sin(a)

    def on_sidewalk(self, side=None):
        side = side or ("L" if self.rng.uniform() < 0.5 else "R")
        if side == "L":
            return self.u(self.y_left + 0.4, self.bld_left - 0.3)
        return self.u(self.bld_right + 0.3, self.y_right - 0.4)

    def add_vehicle(self, x, y, yaw):
        ln, wd = self.u(3.6, 5.0), self.u(1.6, 2.0)
        h0, h1 = self.u(0.2, 0.35), self.u(0.85, 1.1)
        col = rand_color(self.rng, (0.0, 0.9), (0.15, 0.95))
        self.prims.append(box((x, y, (h0 + h1) / 2), (ln, wd, h1 - h0), yaw, VEHICLES, col, 2))
        cl = ln * self.u(0.45, 0.65)
        hc = self.u(0.4, 0.65) if self.rng.uniform() < 0.85 else self.u(0.9, 1.4)  # cars and vans
        off = self.u(-0.15, 0.05) * ln
        cx, cy = x + off * math.cos(yaw), y + off * math.sin(yaw)
        self.prims.append(box((cx, cy, h1 + hc / 2), (cl, wd * 0.9, hc), yaw, VEHICLES, col * 0.6 + 0.05, 2))
        for sgn in (-1, 1):  # wheels peeking out below the body
            for s2 in (-1, 1):
                wx = x + sgn * ln * 0.32 * math.cos(yaw) - s2 * wd * 0.47 * math.sin(yaw)
                wy = y + sgn * ln * 0.32 * math.sin(yaw) + s2 * wd * 0.47 * math.cos(yaw)
                self.prims.append(
                    disc((wx, wy, 0.32), yaw + math.pi / 2, 0.32, VEHICLES, np.full(3, 0.06, np.float32))
                )

    def add_large_vehicle(self, x, y, yaw):
        """Bus or truck: one tall box (windows band via the vehicle texture) on large wheels."""
        ln, wd, top = self.u(7.0, 11.5), self.u(2.3, 2.55), self.u(2.6, 3.4)
        col = rand_color(self.rng, (0.2, 0.9), (0.3, 0.95))
        self.prims.append(box((x, y, (0.35 + top) / 2), (ln, wd, top - 0.35), yaw, VEHICLES, col, 2))
        for sgn in (-1, 1):
            for s2 in (-1, 1):
                wx = x + sgn * ln * 0.35 * math.cos(yaw) - s2 * wd * 0.47 * math.sin(yaw)
                wy = y + sgn * ln * 0.35 * math.sin(yaw) + s2 * wd * 0.47 * math.cos(yaw)
                self.prims.append(
                    disc((wx, wy, 0.5), yaw + math.pi / 2, 0.5, VEHICLES, np.full(3, 0.06, np.float32))
                )

    def add_person(self, x, y, label=PERSON, z0=0.0, height=None):
        h = height if height is not None else self.u(1.45, 1.95)
        r = self.u(0.17, 0.26)
        hr = self.u(0.095, 0.125)
        col = rand_color(self.rng)
        self.prims.append(cyl(x, y, r, z0, z0 + h - 2 * hr, label, col, 1 if self.rng.uniform() < 0.4 else 0))
        self.prims.append(
            sphere((x, y, z0 + h - hr), hr, label, hsv(self.u(0.03, 0.1), self.u(0.2, 0.6), self.u(0.3, 0.9)))
        )

    def add_two_wheeler(self, x, y, yaw, motor, rider):
        label = MOTORCYCLE if motor else BICYCLE
        wr = self.u(0.3, 0.36)
        base = self.u(0.5, 0.6) if not motor else self.u(0.65, 0.8)
        col = rand_color(self.rng)
        for s in (-1, 1):
            self.prims.append(disc((x + s * base * math.cos(yaw), y + s * base * math.sin(yaw), wr), yaw + math.pi / 2, wr, label,
                               np.full(3, 0.08, np.float32)))  # fmt: skip
        if motor:
            self.prims.append(box((x, y, wr + 0.25), (base * 1.6, self.u(0.35, 0.5), 0.5), yaw, label, col))
        else:
            self.prims.append(box((x, y, wr + 0.3), (base * 1.6, 0.06, 0.55), yaw, label, col))
        if rider:
            self.add_person(
                x - 0.15 * math.cos(yaw),
                y - 0.15 * math.sin(yaw),
                RIDER,
                z0=wr + 0.35,
                height=self.u(0.85, 1.05),
            )

    def add_sign(self, x, y, facing):
        top = self.u(2.0, 3.0)
        self.prims.append(
            cyl(x, y, self.u(0.035, 0.06), 0.0, top, VOID, np.full(3, self.u(0.3, 0.6), np.float32))
        )
        col = [
            np.array(c, np.float32)
            for c in ((0.8, 0.1, 0.1), (0.1, 0.2, 0.75), (0.95, 0.95, 0.9), (0.95, 0.8, 0.1))
        ][self.rng.integers(4)]
        yaw = facing + self.u(-0.4, 0.4)
        px, py = x + 0.08 * math.cos(yaw), y + 0.08 * math.sin(yaw)
        if self.rng.uniform() < 0.5:
            self.prims.append(disc((px, py, top - 0.3), yaw, self.u(0.3, 0.45), TRAFFIC_SIGN, col))
        else:
            s = self.u(0.5, 0.8)
            self.prims.append(
                box((px, py, top - s / 2), (0.04, s, s * self.u(0.7, 1.3)), yaw, TRAFFIC_SIGN, col)
            )

    def try_place(self, gen, r, tries=30):
        for _ in range(tries):
            x, y = gen()
            if self.place.free(x, y, r):
                self.place.add(x, y, r)
                return x, y
        return None

    def lane_y(self):
        return self.u(self.y_right + 1.1, self.y_left - 1.1)

    def near_objects(self) -> None:
        """Guaranteed near objects: every class in every scene, at a distance small images still resolve."""
        p = self.try_place(
            lambda: (
                self.near_xy(4.5, 12.0)
                if self.rng.uniform() < 0.5
                else (self.near_xy(4.5, 12.0)[0], self.lane_y())
            ),
            2.6,
        )
        if p:
            self.add_vehicle(p[0], p[1], self.u(-0.15, 0.15) + (math.pi if self.rng.uniform() < 0.5 else 0))
        p = self.try_place(lambda: (self.near_xy(3.0, 9.0)[0], self.on_sidewalk()), 0.5)
        if p:
            self.add_person(*p)
        for motor in (False, True):
            p = self.try_place(lambda: self.near_xy(3.5, 10.0), 1.2)
            if p:
                self.add_two_wheeler(
                    p[0],
                    p[1],
                    self.u(-0.5, 0.5)
                    + (math.pi if self.rng.uniform() < 0.5 else 0)
                    + (math.pi / 2 if self.rng.uniform() < 0.25 else 0),
                    motor,
                    True,
                )
        p = self.try_place(lambda: (self.near_xy(4.0, 12.0)[0], self.on_sidewalk()), 0.4)
        if p:
            self.add_sign(p[0], p[1], 0.0 if p[0] > 1.4 else math.pi)

    def extras(self) -> None:
        """Random extras further away (draws in this order: vehicles, persons and two-wheelers, street furniture)."""
        self.extra_vehicles()
        self.extra_people()
        self.street_furniture()

    def extra_vehicles(self) -> None:
        """Parked and moving vehicles; sometimes a bus or truck."""
        for _ in range(self.rng.integers(2, 9)):  # parked and moving vehicles
            if self.rng.uniform() < 0.5:
                side = 1 if self.rng.uniform() < 0.5 else -1
                gen = lambda side=side: (
                    self.u(-45, 50),
                    (self.y_left - 1.1) if side > 0 else (self.y_right + 1.1),
                )
            else:
                gen = lambda: (self.u(-50, 60), self.lane_y())
            p = self.try_place(gen, 2.6)
            if p:
                self.add_vehicle(
                    p[0], p[1], self.u(-0.08, 0.08) + (math.pi if self.rng.uniform() < 0.5 else 0)
                )
        if self.rng.uniform() < 0.35:  # a bus or truck further away, in a lane or parked
            p = self.try_place(
                lambda: (self.u(10, 45) * (1 if self.rng.uniform() < 0.6 else -1), self.lane_y()), 6.0
            )
            if p:
                self.add_large_vehicle(
                    p[0], p[1], self.u(-0.05, 0.05) + (math.pi if self.rng.uniform() < 0.5 else 0)
                )

    def extra_people(self) -> None:
        """Pedestrians (mostly on the sidewalks) and two-wheelers in the lanes."""
        for _ in range(self.rng.integers(1, 7)):
            p = self.try_place(
                lambda: (self.u(-30, 40), self.on_sidewalk() if self.rng.uniform() < 0.8 else self.lane_y()),
                0.5,
            )
            if p:
                self.add_person(*p)
        for _ in range(self.rng.integers(0, 3)):
            p = self.try_place(lambda: (self.u(-30, 40), self.lane_y()), 1.2)
            if p:
                self.add_two_wheeler(
                    p[0],
                    p[1],
                    self.u(-0.2, 0.2) + (math.pi if self.rng.uniform() < 0.5 else 0),
                    self.rng.uniform() < 0.5,
                    self.rng.uniform() < 0.7,
                )

    def street_furniture(self) -> None:
        """Signs, trees and lamp posts on the sidewalks."""
        for _ in range(self.rng.integers(1, 5)):
            p = self.try_place(lambda: (self.u(-40, 50), self.on_sidewalk()), 0.4)
            if p:
                self.add_sign(p[0], p[1], 0.0 if self.rng.uniform() < 0.6 else math.pi)
        for _ in range(self.rng.integers(1, 6)):  # trees and lamp posts (void)
            p = self.try_place(lambda: (self.u(-40, 50), self.on_sidewalk()), 0.6)
            if p is None:
                continue
            if self.rng.uniform() < 0.6:
                h = self.u(2.5, 4.0)
                self.prims.append(
                    cyl(
                        p[0],
                        p[1],
                        self.u(0.1, 0.2),
                        0.0,
                        h,
                        VOID,
                        hsv(self.u(0.05, 0.1), self.u(0.3, 0.6), self.u(0.2, 0.4)),
                    )
                )
                self.prims.append(
                    sphere(
                        (p[0], p[1], h + self.u(0.8, 1.5)),
                        self.u(1.2, 2.2),
                        VOID,
                        hsv(self.u(0.2, 0.35), self.u(0.4, 0.8), self.u(0.2, 0.5)),
                        3,
                    )
                )
            else:
                self.prims.append(
                    cyl(
                        p[0],
                        p[1],
                        self.u(0.06, 0.12),
                        0.0,
                        self.u(4, 7),
                        VOID,
                        np.full(3, self.u(0.25, 0.55), np.float32),
                    )
                )
