"""The house's import graph (grimp, TYPE_CHECKING imports included): no circle, and only the
command line imports the command line."""

import grimp


def test_fop_rl_imports_have_no_circle_and_no_arrow_back_to_the_command_line():
    graph = grimp.build_graph("fop_rl")
    circles = [(a, b) for a in sorted(graph.modules)
               for b in sorted(graph.find_modules_directly_imported_by(a))
               if graph.chain_exists(importer=b, imported=a)]
    assert circles == []
    cli = {m for m in graph.modules if m == "fop_rl.cli" or m.startswith("fop_rl.cli.")}
    assert {m for m in graph.modules - cli
            if graph.find_modules_directly_imported_by(m) & cli} == set()
