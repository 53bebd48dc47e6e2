"""Drawing a particle system, Qt-free: the one renderer of the live 3D
views (:mod:`studio.widgets.particle_view`) and of the video export
(:mod:`studio.export.scene`).

* :mod:`.palette` -- every colour of the studio (runs, scene, text, window);
* :mod:`.geometry` -- positions in 3D, periodic wrapping, sphere sizes from
  bond length and masses, box outline, camera framing (bounding sphere);
* :mod:`.colouring` -- per-particle error / speed / energy, the colour map
  and :class:`~.colouring.Colouring` (colours of one frame, value range);
* :mod:`.spheres` -- the shaded-sphere (and ring) point-sprite visual;
* :mod:`.particles` -- :class:`~.particles.ParticleScene`, what one view
  draws: spheres, the overlaid run, bonds, box;
* :mod:`.frame` -- one roll-out frame into the scenes, by layout;
* :mod:`.plot2d` -- the colour bar and the energy-drift plot of video frames.

Uses numpy and vispy; never Qt widgets nor :mod:`studio.widgets` (an
import-linter contract in ``pyproject.toml`` checks it). Importing the
package imports nothing heavy.
"""
