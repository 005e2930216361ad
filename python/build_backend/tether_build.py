"""A minimal PEP 517 build backend for the tether Python package: a pure
Python wheel (and an sdist) from pyproject.toml's [project] table, with no
build requirements, so that `pip install ./python` works without network.
Editable installs (PEP 660) add a .pth file that points at this tree.

With the config setting binary=PATH (`make wheel` passes it), the wheel is
a platform wheel that carries that tether program twice: as tether/_bin/tether,
which the module runs, and as a script, which puts `tether` on the PATH of
the environment it is installed into."""

import base64
import hashlib
import io
import os
import re
import stat
import sysconfig
import tarfile
import zipfile

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "tether"
# tether/_service.py's find_tether() looks here
BUNDLED = "%s/_bin/tether" % PACKAGE


def _project():
    with open(os.path.join(HERE, "pyproject.toml"), "rb") as f:
        data = f.read()
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        try:
            import tomli as tomllib
        except ImportError:
            tomllib = None
    if tomllib:
        return tomllib.loads(data.decode("utf-8"))["project"]
    # just enough of TOML for our own file
    text = data.decode("utf-8")
    proj = {}
    for key in ("name", "version", "description", "requires-python"):
        m = re.search(r'^%s\s*=\s*"([^"]*)"' % re.escape(key), text, re.M)
        if m:
            proj[key] = m.group(1)
    m = re.search(r"^dependencies\s*=\s*\[([^\]]*)\]", text, re.M)
    proj["dependencies"] = re.findall(r'"([^"]+)"', m.group(1)) if m else []
    proj["entry-points"] = {"pytest11": {"tether.pytest_plugin": "tether.pytest_plugin"}}
    proj["optional-dependencies"] = {"testresources": ["testresources"]}
    return proj


def _names(proj):
    name = re.sub(r"[-_.]+", "_", proj["name"])
    return name, "%s-%s" % (name, proj["version"])


def _metadata(proj):
    lines = ["Metadata-Version: 2.1", "Name: %s" % proj["name"],
             "Version: %s" % proj["version"]]
    if proj.get("description"):
        lines.append("Summary: %s" % proj["description"])
    if proj.get("requires-python"):
        lines.append("Requires-Python: %s" % proj["requires-python"])
    for dep in proj.get("dependencies", []):
        lines.append("Requires-Dist: %s" % dep)
    for extra, deps in proj.get("optional-dependencies", {}).items():
        lines.append("Provides-Extra: %s" % extra)
        for dep in deps:
            lines.append('Requires-Dist: %s; extra == "%s"' % (dep, extra))
    return "\n".join(lines) + "\n"


def _entry_points(proj):
    out = []
    for group, eps in proj.get("entry-points", {}).items():
        out.append("[%s]" % group)
        out += ["%s = %s" % (k, v) for k, v in eps.items()]
        out.append("")
    return "\n".join(out)


def _tag(binary):
    """py3-none-any, or for a wheel with a program the platform's tag
    (linux_x86_64: the program needs this machine's kind of libc)."""
    if not binary:
        return "py3-none-any"
    return "py3-none-" + re.sub(r"[-.]", "_", sysconfig.get_platform())


def _dist_info(proj, binary=None):
    info = {
        "METADATA": _metadata(proj),
        "WHEEL": "Wheel-Version: 1.0\nGenerator: tether_build\nRoot-Is-Purelib: %s\n"
                 "Tag: %s\n" % ("false" if binary else "true", _tag(binary)),
        "entry_points.txt": _entry_points(proj),
    }
    # the top of the source tree has it; an sdist has none
    lic = os.path.join(os.path.dirname(HERE), "LICENSE")
    if os.path.exists(lic):
        with open(lic, encoding="utf-8") as f:
            info["LICENSE"] = f.read()
    return info


def _binary(config_settings):
    """The tether program to bundle (config setting binary=PATH), or None."""
    path = (config_settings or {}).get("binary")
    if not path:
        return None
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise ValueError("binary=%s is not an executable file: build it first (make wheel)"
                         % path)
    return path


def _write_wheel(path, files, dist_info_dir):
    record = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for arcname, data in files:
            info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            # pip keeps the executable bit of a regular file the archive marks so
            exe = arcname == BUNDLED or "/scripts/" in arcname
            info.external_attr = (stat.S_IFREG | (0o755 if exe else 0o644)) << 16
            z.writestr(info, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append("%s,sha256=%s,%d" % (arcname, digest.decode(), len(data)))
        record.append("%s/RECORD,," % dist_info_dir)
        z.writestr("%s/RECORD" % dist_info_dir, "\n".join(record) + "\n")


def _package_files():
    pkg = os.path.join(HERE, PACKAGE)
    for name in sorted(os.listdir(pkg)):
        if name.endswith(".py"):
            with open(os.path.join(pkg, name), "rb") as f:
                yield "%s/%s" % (PACKAGE, name), f.read()


def _build(wheel_directory, editable, binary=None):
    proj = _project()
    name, base = _names(proj)
    dist_info = "%s.dist-info" % base
    if editable:
        files = [("__editable__.%s.pth" % name, (HERE + "\n").encode())]
    else:
        files = list(_package_files())
    if binary:
        with open(binary, "rb") as f:
            prog = f.read()
        files += [(BUNDLED, prog), ("%s.data/scripts/tether" % base, prog)]
    files += [("%s/%s" % (dist_info, k), v.encode())
              for k, v in _dist_info(proj, binary).items()]
    wheel = "%s-%s.whl" % (base, _tag(binary))
    _write_wheel(os.path.join(wheel_directory, wheel), files, dist_info)
    return wheel


def get_requires_for_build_wheel(config_settings=None):
    return []


get_requires_for_build_sdist = get_requires_for_build_wheel
get_requires_for_build_editable = get_requires_for_build_wheel


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    proj = _project()
    dist_info = "%s.dist-info" % _names(proj)[1]
    os.makedirs(os.path.join(metadata_directory, dist_info), exist_ok=True)
    for k, v in _dist_info(proj, _binary(config_settings)).items():
        with open(os.path.join(metadata_directory, dist_info, k), "w") as f:
            f.write(v)
    return dist_info


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _build(wheel_directory, editable=False, binary=_binary(config_settings))


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _build(wheel_directory, editable=True)


def build_sdist(sdist_directory, config_settings=None):
    proj = _project()
    base = _names(proj)[1]
    path = os.path.join(sdist_directory, base + ".tar.gz")
    with tarfile.open(path, "w:gz") as tar:
        for rel in ["pyproject.toml", "build_backend/tether_build.py"] + \
                [a for a, _ in _package_files()]:
            tar.add(os.path.join(HERE, rel), arcname="%s/%s" % (base, rel))
        info = tarfile.TarInfo("%s/PKG-INFO" % base)
        data = _metadata(proj).encode()
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return os.path.basename(path)


if __name__ == "__main__":
    # tether_build.py --dist-info DIR: the files of an installed package's
    # .dist-info directory (METADATA, entry_points.txt...) straight into DIR,
    # for meson's install of the module (and so the .deb's): it registers
    # the pytest plugin as pip's install does.
    import sys
    if len(sys.argv) != 3 or sys.argv[1] != "--dist-info":
        sys.exit("usage: tether_build.py --dist-info DIR")
    for k, v in _dist_info(_project()).items():
        with open(os.path.join(sys.argv[2], k), "w", encoding="utf-8") as f:
            f.write(v)
