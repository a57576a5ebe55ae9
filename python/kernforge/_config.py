"""Build and run-time configuration report."""
import os
import sys

from . import _core


def config():
    """The build and run-time configuration as a dict (what :func:`show_config` prints)."""
    cfg = dict(_core.build_config)
    cfg["threads"] = _core.get_num_threads()
    cfg["default_threads"] = _core.default_num_threads()
    cfg["isa_detected"] = _core.detected_isa()
    cfg["isa_active"] = _core.active_isa()
    cfg["KERNFORGE_ISA"] = os.environ.get("KERNFORGE_ISA")
    cfg["OMP_WAIT_POLICY"] = os.environ.get("OMP_WAIT_POLICY")
    cfg["areas"] = list(_core.areas)
    cfg["python"] = sys.version.split()[0]
    try:
        import numpy

        cfg["numpy"] = numpy.__version__
    except ImportError:  # pragma: no cover
        pass
    return cfg


def show_config(file=None):
    """Print the compiler, OpenMP, threads, SIMD level, CUDA and Eigen versions kernforge was built with.

    Examples
    --------
    >>> import kernforge as kf
    >>> kf.show_config()  # doctest: +ELLIPSIS
    kernforge ...
    """
    cfg = config()
    out = file or sys.stdout
    print(f"kernforge {cfg['version']}", file=out)
    feats = ", ".join(k for k, v in cfg["cpu_features"].items() if v) or "none"
    rows = [
        ("compiler", cfg["compiler"]),
        ("compiled for", cfg["compiled_baseline"]),
        ("openmp", f"{'on' if cfg['openmp'] else 'off'}" + (f" ({cfg['openmp_version']})" if cfg["openmp_version"] else "")),
        ("threads", f"{cfg['threads']} (default {cfg['default_threads']}, OMP_WAIT_POLICY={cfg['OMP_WAIT_POLICY']})"),
        ("simd", f"{cfg['isa_active']} active, {cfg['isa_detected']} detected (cpu: {feats})"
                 + (f", KERNFORGE_ISA={cfg['KERNFORGE_ISA']}" if cfg["KERNFORGE_ISA"] else "")),
        ("cuda", f"on, {cfg['cuda_devices']} device(s)" if cfg["cuda"] else "off"),
        ("eigen", cfg["eigen"]),
        ("areas", ", ".join(cfg["areas"])),
        ("python / numpy", f"{cfg['python']} / {cfg.get('numpy', '?')}"),
    ]
    for k, v in rows:
        print(f"  {k:<15} {v}", file=out)
