"""A lean vispy visual of shaded spheres (point-sprite impostors).

vispy's general ``Markers`` visual (symbols, edges, antialiasing, clamping,
depth-correct spheres) costs about 25 ms a frame for 4,096 particles under
Mesa llvmpipe, which caps two side-by-side views well below 30 frames a
second. This visual draws each particle as one GL point whose size is the
sphere's projected diameter (scene units, perspective-correct, as
``Markers(scaling="scene")``), and shades it in the fragment shader as a
lit sphere (Lambert + a specular highlight) from ``gl_PointCoord`` -- no
symbol switch, no edge, no ``gl_FragDepth`` (depth is the centre's, which
is exact enough for particles that do not interpenetrate).

Each particle carries a size factor (``a_scale``, 1 by default) that
multiplies the common diameter, so particles of different mass can be drawn
at different sizes (:func:`studio.scene.geometry.mass_scales`).

Outline mode (:meth:`SpheresVisual.set_outline`) draws each particle as a
flat ring just outside its sphere instead (the overlay's ground truth): a
sphere of the other set at the same place stays fully visible inside it.

Data live in one interleaved vertex buffer (position, colour, size factor);
per-frame updates upload positions (and colours when they change) only.
"""
from __future__ import annotations

import numpy as np
from vispy import gloo
from vispy.scene.visuals import create_visual_node
from vispy.visuals import Visual

_VERT = """
uniform float u_size;            // sphere diameter in scene units
uniform float u_max_px;          // largest point size
uniform float u_grow;            // outline mode: ring diameter / sphere diameter (1: solid)
attribute vec3 a_position;
attribute vec4 a_color;
attribute float a_scale;         // this particle's diameter / u_size
varying vec4 v_color;
varying float v_px;

void main() {
    vec4 fb = $visual_to_framebuffer(vec4(a_position, 1.0));
    // a screen-horizontal direction in visual coordinates (as vispy's Markers
    // with scaling="scene"), one diameter long, projected back to pixels
    vec4 pos = $framebuffer_to_visual(fb);
    vec4 x = $framebuffer_to_visual(fb + vec4(1e10, 0.0, 0.0, 0.0)) - pos;
    vec4 edge = $visual_to_framebuffer(pos + normalize(x) * u_size * a_scale * u_grow);
    float px = abs(edge.x / edge.w - fb.x / fb.w);
    v_px = clamp(px, 1.0, u_max_px);
    v_color = a_color;
    gl_Position = $framebuffer_to_render(fb);
    gl_PointSize = v_px;
}
"""

_FRAG = """
varying vec4 v_color;
varying float v_px;
uniform vec3 u_light;            // unit vector towards the light (view space)
uniform float u_ring;            // outline mode: inner radius of the ring (0: solid sphere)

void main() {
    vec2 c = 2.0 * gl_PointCoord - 1.0;
    float r2 = dot(c, c);
    if (r2 > 1.0) discard;
    if (u_ring > 0.0) {
        // a flat ring from u_ring to 1 (at least 1.5 pixels wide)
        float r = sqrt(r2);
        float inner = min(u_ring, 1.0 - 3.0 / max(v_px, 4.0));
        if (r < inner) discard;
        gl_FragColor = vec4(v_color.rgb, v_color.a);
        return;
    }
    vec3 n = vec3(c.x, -c.y, sqrt(1.0 - r2));
    float diffuse = max(dot(n, u_light), 0.0);
    float spec = pow(max(dot(reflect(-u_light, n), vec3(0.0, 0.0, 1.0)), 0.0), 24.0);
    vec3 rgb = v_color.rgb * (0.30 + 0.75 * diffuse) + 0.35 * spec;
    // a darker rim so touching spheres stay apart (one pixel wide at any size)
    float rim = smoothstep(1.0 - 2.5 / max(v_px, 2.0), 1.0, sqrt(r2));
    gl_FragColor = vec4(mix(rgb, rgb * 0.35, rim), v_color.a);
}
"""

_DTYPE = [("a_position", np.float32, 3), ("a_color", np.float32, 4), ("a_scale", np.float32)]


class SpheresVisual(Visual):
    """Shaded spheres of one diameter (scene units) times a size factor of
    each sphere, one colour each."""

    def __init__(self, size: float = 0.4, max_px: float = 256.0, light=(-0.35, 0.45, 0.82)):
        Visual.__init__(self, vcode=_VERT, fcode=_FRAG)
        self._data = np.zeros(0, dtype=_DTYPE)
        self._vbo = gloo.VertexBuffer(self._data)
        self.shared_program.bind(self._vbo)
        self.shared_program["u_size"] = float(size)
        self.shared_program["u_max_px"] = float(max_px)
        self.shared_program["u_grow"] = 1.0
        self.shared_program["u_ring"] = 0.0
        self._outline = 0.0
        light = np.asarray(light, np.float32)
        self.shared_program["u_light"] = light / np.linalg.norm(light)
        self._draw_mode = "points"
        self.set_gl_state("translucent", depth_test=True, blend=True, cull_face=False)
        self.freeze()

    # -- data ----------------------------------------------------------------
    @property
    def n(self) -> int:
        return int(len(self._data))

    @property
    def positions(self) -> np.ndarray:
        return self._data["a_position"]

    @property
    def colors(self) -> np.ndarray:
        return self._data["a_color"]

    @property
    def scales(self) -> np.ndarray:
        """Size factor of each sphere (its diameter over the common one)."""
        return self._data["a_scale"]

    def set_data(self, pos: np.ndarray, colors=None, size: float | None = None, scales=None) -> None:
        """Replace all particles: pos (N, 3), colors (N, 4) or one RGBA,
        scales (N,) size factors or None for all 1."""
        pos = np.asarray(pos, np.float32)
        data = np.zeros(len(pos), dtype=_DTYPE)
        data["a_position"] = pos
        data["a_color"] = (1.0, 1.0, 1.0, 1.0) if colors is None else colors
        data["a_scale"] = 1.0 if scales is None else np.asarray(scales, np.float32)
        self._data = data
        self._vbo.set_data(data)
        self.shared_program.bind(self._vbo)     # attribute views carry their length
        if size is not None:
            self.shared_program["u_size"] = float(size)
        self.update()

    def update_positions(self, pos: np.ndarray, colors=None) -> None:
        """Move the particles (same count); optionally recolour them."""
        if len(pos) != len(self._data):
            raise ValueError(f"expected {len(self._data)} positions, got {len(pos)}")
        self._data["a_position"] = pos
        if colors is not None:
            self._data["a_color"] = colors
        self._vbo.set_data(self._data)
        self.update()

    def set_size(self, size: float) -> None:
        self.shared_program["u_size"] = float(size)
        self.update()

    @property
    def outline(self) -> float:
        """Ring diameter over sphere diameter in outline mode; 0: solid spheres."""
        return self._outline

    def set_outline(self, grow: float = 0.0) -> None:
        """Draw rings ``grow`` (> 1) times the sphere's diameter whose inside
        is the sphere's size (so a sphere at the same place fits in the
        hole); 0: shaded solid spheres."""
        grow = float(grow)
        if grow and grow <= 1.0:
            raise ValueError("a ring must be wider than its sphere (grow > 1)")
        self._outline = grow
        self.shared_program["u_grow"] = grow if grow else 1.0
        self.shared_program["u_ring"] = 1.0 / grow if grow else 0.0
        self.update()

    # -- vispy hooks ---------------------------------------------------------
    def _prepare_transforms(self, view):
        tr = view.transforms
        view.view_program.vert["visual_to_framebuffer"] = tr.get_transform("visual", "framebuffer")
        view.view_program.vert["framebuffer_to_visual"] = tr.get_transform("framebuffer", "visual")
        view.view_program.vert["framebuffer_to_render"] = tr.get_transform("framebuffer", "render")

    def _prepare_draw(self, view):
        return len(self._data) > 0

    def _compute_bounds(self, axis, view):
        if len(self._data) == 0:
            return None
        p = self._data["a_position"][:, axis]
        return float(p.min()), float(p.max())


#: the scene-graph node: ``Spheres(parent=view.scene)``
Spheres = create_visual_node(SpheresVisual)
