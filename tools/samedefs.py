"""Does a module define the same things after its notebook's cells were split or moved?
   python tools/samedefs.py OLD.py NEW.py   (OLD: `git show main:semisupervised_learning/crops.py > /tmp/old.py`)
Compares every top-level statement by its AST (comments and `# %%` cell markers do not count), ignoring order;
prints what differs and exits 1, else says how many statements match. Order matters only where a statement uses a
name defined later at import time: importing the new module (and its notebook's tests) checks that."""
import ast, sys
from collections import Counter
def statements(path):
    tree = ast.parse(open(path).read())
    for node in tree.body:      # nbdev's __all__ follows the cells' order: compared as a set
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', None) == '__all__':
            if isinstance(node.value, ast.List) and all(isinstance(e, ast.Constant) for e in node.value.elts):
                node.value.elts.sort(key=lambda e: e.value)
    return Counter(ast.dump(node, include_attributes=False) for node in tree.body)
old, new = statements(sys.argv[1]), statements(sys.argv[2])
gone, added = old - new, new - old
for what, items in (('only in OLD', gone), ('only in NEW', added)):
    for s in items: print(what + ':', s[:300])
if gone or added: sys.exit(1)
print(f"same {sum(old.values())} top-level statements")
