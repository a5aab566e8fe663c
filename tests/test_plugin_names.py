"""Plugin names: short where they are unique, qualified where two plugins share one."""

import pytest

from pvconsole.pluginspec import split_args
from pvconsole.plugins import plugin_name, qualified_name


@pytest.mark.parametrize("spec, short, qualified", [
    ("ioc_plugins/psu.py", "psu", "ioc_plugins.psu"),
    ("/opt/iocs/b/ioc.py", "ioc", "b.ioc"),
    ("/opt/iocs/b/ioc.py:beamline", "beamline", "b.ioc.beamline"),
    ("mypkg.motors", "motors", "mypkg.motors"),
    ("mypkg.objs2:ioc", "ioc", "objs2.ioc"),
    ("ep:vacuum", "vacuum", "vacuum"),
    ("/opt/iocs/b/ioc.py -P 'SEIS 1:' --sim", "ioc", "b.ioc"),  # the script's command line
    ("mypkg.motors --axes 4", "motors", "mypkg.motors"),
])
def test_names(spec, short, qualified):
    assert plugin_name(spec) == short
    assert qualified_name(spec) == qualified


def test_path_attr_plugin(engine_factory, pva, tmp_path):
    """``FILE.py:ATTR`` picks an object of a file, as ``module:attr`` does of a module."""
    (tmp_path / "iocs.py").write_text(
        "class Beamline:\n    prefix = 'BL:'\n    pvdb = {'E': {'value': 3.5}}\n"
        "beamline = Beamline()\n")
    engine = engine_factory(f"{tmp_path / 'iocs.py'}:beamline")
    assert [p.name for p in engine.plugins if not p.error and p.name != "pvconsole"] == ["beamline"]
    assert pva(engine).get("BL:E").value == 3.5


def test_a_plugin_that_changes_directory_keeps_the_next_relative_path(engine_factory, tmp_path,
                                                                      monkeypatch):
    """``os.chdir`` to find a config file (a common script idiom) made the next plugin's
    relative path point elsewhere: 'plugin skipped: second.py: no such file'."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "first.py").write_text(
        "import os\nos.chdir(os.path.dirname(os.path.abspath(__file__)))\n"
        "prefix = 'CD1:'\npvdb = {'X': {}}\n")
    (tmp_path / "second.py").write_text("prefix = 'CD2:'\npvdb = {'X': {}}\n")
    monkeypatch.chdir(tmp_path)
    engine = engine_factory("sub/first.py", "second.py")
    assert [p.error for p in engine.plugins if p.source != "builtin"] == ["", ""]
    assert {"CD1:X", "CD2:X"} <= set(engine.entries)


def test_plugins_sharing_a_driver_base_class_keep_their_own_ports(engine_factory, tmp_path):
    """A base class in a helper module is defined while the first plugin loads; a patch of
    Driver.__init__ then went into it for good (pcaspy's metaclass wraps the __init__ a
    class has), and the second plugin's driver got the first one's port (KeyError)."""
    (tmp_path / "_base.py").write_text(
        "from pcaspy import Driver\nclass Base(Driver):\n    pass\n")
    for name, reason in (("a", "VA"), ("b", "VB")):
        (tmp_path / f"{name}.py").write_text(
            "from _base import Base\n"
            f"prefix = '{name.upper()}:'\npvdb = {{'{reason}': {{}}}}\n"
            "class Dev(Base):\n"
            "    def __init__(self):\n"
            "        super().__init__()\n"
            f"        self.setParam('{reason}', 5)\n")
    engine = engine_factory(str(tmp_path / "a.py"), str(tmp_path / "b.py"))
    assert [p.error for p in engine.plugins if p.source != "builtin"] == ["", ""]
    assert engine.drivers["a"].port != engine.drivers["b"].port
    assert engine.drivers["b"].getParam("VB") == 5


def test_a_spec_s_command_line_is_split_as_a_shell_would(tmp_path, monkeypatch):
    assert split_args("ioc.py -P 'SEIS 1:' --sim") == ("ioc.py", ["-P", "SEIS 1:", "--sim"])
    assert split_args("ioc.py") == ("ioc.py", [])
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my iocs.py").write_text("")
    assert split_args("my iocs.py") == ("my iocs.py", [])  # a file of that name: no arguments
    many = " ".join(f"SR:BPM{i:02}:X" for i in range(40))  # longer than a file name can be
    assert split_args(f"gw.py {many}") == ("gw.py", many.split())
    assert split_args("'my iocs.py' -P X:") == ("my iocs.py", ["-P", "X:"])
    assert split_args("ioc.py 'unclosed") == ("ioc.py 'unclosed", [])


def test_a_module_plugin_naming_main_in_passing_is_not_a_script(engine_factory, pva, tmp_path):
    """Only a top-level ``if __name__ == '__main__':`` makes a file a script: the two names
    in a comment and ``type(e).__name__`` ran this module plugin as ``__main__``."""
    mark = tmp_path / "name.txt"
    (tmp_path / "modplug.py").write_text(
        "# not run as __main__\nfrom pcaspy import Driver\n"
        "prefix = 'MP:'\npvdb = {'X': {'value': 1.5}}\n"
        "def name_of(e):\n    return type(e).__name__\n"
        "class D(Driver):\n    pass\n"
        f"open({str(mark)!r}, 'w').write(__name__)\n")
    engine = engine_factory(str(tmp_path / "modplug.py"))
    assert pva(engine).get("MP:X").value == 1.5
    assert mark.read_text() != "__main__"


def test_what_a_script_defines_can_be_pickled(engine_factory, pva):
    """pickle looks up ``__main__.Settings``: pvconsole's ``__main__`` finds it among the
    scripts' names (it failed: 'attribute lookup Settings on __main__ failed')."""
    from conftest import plugin_path, wait_for
    engine = engine_factory(plugin_path("script_pickle"))
    ctx = pva(engine)
    ctx.put("PK:SP", 21.0)
    ctx.put("PK:SAVE", 1)
    assert wait_for(lambda: ctx.get("PK:ERR").value == "ok")
    assert ctx.get("PK:RES").value == 42.0
