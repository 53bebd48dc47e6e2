"""Particle mass sets the sphere size in the 3D views: radius proportional to
mass^(1/3) relative to the median mass (uniform masses keep today's look)."""
from __future__ import annotations

import numpy as np
import pytest

from core.physics import builders
from studio.scene.geometry import MASS_SCALE_RANGE, mass_scales
from studio.widgets.particle_view import ParticleView


def test_mass_scales_follow_the_cube_root_of_mass():
    assert np.allclose(mass_scales([1.0, 1.0, 1.0]), 1.0)
    assert np.allclose(mass_scales([2.5] * 7), 1.0)              # uniform: no change, whatever the unit
    s = mass_scales([1.0, 1.0, 3.0, 1.0])
    assert np.allclose(s, [1.0, 1.0, 3.0 ** (1 / 3), 1.0], rtol=1e-6)
    # a change of mass unit changes nothing
    assert np.allclose(mass_scales(np.array([1.0, 1.0, 3.0, 1.0]) * 17.0), s, rtol=1e-6)
    # volume (radius cubed) proportional to mass between any two particles
    m = np.array([0.7, 1.0, 1.3, 2.0, 1.1])
    r = mass_scales(m).astype(float)
    assert np.allclose(r[:, None] ** 3 / (r[None, :] ** 3), m[:, None] / m[None, :], rtol=1e-5)
    # extreme ratios are clipped so one particle cannot fill the view
    e = mass_scales([1.0, 1.0, 1.0, 1e6, 1e-6])
    assert e[3] == pytest.approx(MASS_SCALE_RANGE[1]) and e[4] == pytest.approx(MASS_SCALE_RANGE[0])


def _two_particles(masses):
    return builders.custom(2, [[0.0, 0.0], [4.0, 0.0]], masses=masses)


def _blob_widths(img):
    key = (img[..., 0].astype(np.int32) << 16) | (img[..., 1].astype(np.int32) << 8) | img[..., 2]
    vals, counts = np.unique(key, return_counts=True)
    fg = key != vals[np.argmax(counts)]
    cols = np.flatnonzero(fg.any(axis=0))
    assert cols.size, "nothing drawn"
    mid = img.shape[1] // 2
    left, right = cols[cols < mid], cols[cols >= mid]
    assert left.size and right.size, "expected one sphere in each half"
    return left.max() - left.min() + 1, right.max() - right.min() + 1


def test_heavier_particle_is_drawn_bigger(qtbot):
    view = ParticleView("test")
    qtbot.addWidget(view)
    view.resize(480, 300)
    view.show()
    qtbot.waitExposed(view)

    view.set_system(_two_particles([1.0, 1.0]))
    assert np.allclose(view.particles.scales, 1.0) and np.allclose(view.ghost.scales, 1.0)
    a, b = _blob_widths(view.render_image())
    assert abs(a - b) <= 2, (a, b)                   # equal masses: equal spheres

    view.set_system(_two_particles([1.0, 8.0]))
    light, heavy = _blob_widths(view.render_image())
    # 8 times the mass: twice the radius (cube root), seen on screen
    assert 1.7 < heavy / light < 2.3, (light, heavy)
    assert np.allclose(view.ghost.scales, view.particles.scales)


def test_drawn_system_with_mixed_masses_in_the_window(qtbot, window):
    w = window
    model = w.drawingPanel.model
    for xy in [(0, 0), (1, 0), (1, 1), (0, 1)]:
        model.add_point(xy)
    for e in [(0, 1), (1, 2), (2, 3), (3, 0)]:
        model.add_edge(*e)
    model.set_mass([2], 3.0)
    w.drawingPanel.useButton.click()
    s = w.session.system
    assert np.allclose(s.masses, [1, 1, 3, 1])
    for v in (w.views.truthView, w.views.predictionView):
        sc = np.asarray(v.particles.scales, float)
        assert np.allclose(sc, [1, 1, 3 ** (1 / 3), 1], rtol=1e-6)
        assert v.max_scale == pytest.approx(3 ** (1 / 3))
    # a lattice of uniform masses is back to factor 1 everywhere
    w.systemPanel.buildButton.click()
    assert np.allclose(w.views.truthView.particles.scales, 1.0)
