#!/usr/bin/env python
"""Wrap Python source lines longer than LIMIT without changing what the code does.

  wrap120.py FILE.py ...            rewrite modules in place (for trying it)
  wrap120.py --nb NB.ipynb ...      rewrite the `#| export` cells of notebooks in place

Per long line, in this order: a trailing comment moves to its own line(s) above (fastcore's docments reads comment
lines above a parameter too); a break after a comma (or before ' if ', ' else ', ' and ', ' or ', ' for ', ' + ')
inside brackets, the rest aligned after the open bracket; a string literal inside brackets split in two at a space
(implicit concatenation); `a; b` split into statements; a one-line docstring made a wrapped triple-quoted one.
Lines it cannot mend are printed. The AST (docstrings with whitespace collapsed) must be unchanged: checked.
"""
import ast, io, json, re, sys, textwrap, tokenize

LIMIT = 120
OPEN, CLOSE = '([{', ')]}'
COMPOUND = {'if', 'elif', 'else', 'for', 'while', 'with', 'try', 'except', 'finally', 'def', 'class', 'async'}


def docstring_lines(src):
    "Line numbers (1-based) of docstring string tokens: first statement of a module, class or function."
    out = set()
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                out.add(first.lineno)
    return out


def tokens_of(src):
    return list(tokenize.generate_tokens(io.StringIO(src).readline))


def fstring_split_ok(raw, pos):
    "Is raw[pos] (inside a string token) outside an f-string's replacement field?"
    prefix = re.match(r'[a-zA-Z]*', raw).group(0).lower()
    if 'f' not in prefix: return True
    depth, i = 0, len(prefix) + 1
    while i < pos:
        c = raw[i]
        if c in '{}' and raw[i:i + 2] in ('{{', '}}') and depth == 0: i += 2; continue
        if c == '{': depth += 1
        elif c == '}': depth -= 1
        i += 1
    return depth == 0


def mend_line(src, lines, i, toks, docs):
    "Return new source with physical line i (0-based) shortened, or None."
    line = lines[i]
    indent = len(line) - len(line.lstrip())
    on_line = [t for t in toks if t.start[0] - 1 <= i <= t.end[0] - 1 and t.type not in (tokenize.NL, tokenize.NEWLINE,
                                                                                          tokenize.INDENT, tokenize.DEDENT)]
    # A. a trailing comment goes above
    comments = [t for t in on_line if t.type == tokenize.COMMENT and t.start[0] - 1 == i]
    code_before = [t for t in on_line if t.type != tokenize.COMMENT and t.end[0] - 1 == i and t.end[1] <= (comments[0].start[1] if comments else 0)]
    first = next((t for t in on_line if t.start[0] - 1 == i), None)
    one_liner = any(t.type == tokenize.OP and t.string == ':' and not depth_at_token(toks, t) for t in code_before[2:])
    if comments and code_before and first is not None and first.string == 'def' and first.start[1] == indent \
            and not one_liner:
        # a signature's first line with a parameter's comment: the parameters start on the next line, so the comment
        # can go above its parameter (fastcore's docments reads it there) instead of above the `def`
        paren = next((t for t in code_before if t.type == tokenize.OP and t.string == '('), None)
        commas = [t for t in code_before if t.type == tokenize.OP and t.string == ',' and paren and t.start[1] > paren.start[1]]
        cut = (commas[-2] if len(commas) >= 2 else paren) if paren else None
        if cut is not None and cut.end[1] < comments[0].start[1]:
            ind = paren.end[1]
            head, rest = line[:cut.end[1]].rstrip(), line[cut.end[1]:].lstrip()
            if head.endswith('('): ind = indent + 8
            return '\n'.join(lines[:i] + [head, ' ' * ind + rest] + lines[i + 1:]) + '\n'
    if comments and code_before and not line.lstrip().startswith('#'):
        c = comments[0]
        text = c.string.lstrip('#').strip()
        code = line[:c.start[1]].rstrip()
        pad = ' ' * indent
        j = i + 1
        while j < len(lines) and lines[j].lstrip().startswith('#') \
                and abs(len(lines[j]) - len(lines[j].lstrip()) - c.start[1]) <= 2:
            text += ' ' + lines[j].strip().lstrip('#').strip(); j += 1
        wrapped = textwrap.wrap(text, LIMIT - indent - 2, break_on_hyphens=False, break_long_words=False) or ['']
        new = [f'{pad}# {w}' for w in wrapped] + [code]
        return '\n'.join(lines[:i] + new + lines[j:]) + '\n'
    if comments and not code_before:        # a comment line: wrap it
        c = comments[0]
        if c.start[1] == indent:
            text = c.string.lstrip('#').strip()
            lead = re.match(r'#+\s?', c.string).group(0)
            wrapped = textwrap.wrap(text, LIMIT - indent - len(lead), break_on_hyphens=False, break_long_words=False)
            if len(wrapped) > 1:
                new = [' ' * indent + lead + w for w in wrapped]
                return '\n'.join(lines[:i] + new + lines[i + 1:]) + '\n'
        return None
    # depth of brackets at the start of each token, from the start of the logical line
    depth_at, stack = {}, []
    for t in toks:
        if t.type == tokenize.NEWLINE: stack = []
        depth_at[id(t)] = list(stack)
        if t.type == tokenize.OP and t.string in OPEN: stack.append(t)
        elif t.type == tokenize.OP and t.string in CLOSE and stack: stack.pop()
    # D. docstrings
    strings = [t for t in on_line if t.type == tokenize.STRING]
    for t in strings:
        if t.start[0] in docs:
            raw = t.string
            m = re.match(r'([a-zA-Z]*)("""|\'\'\'|"|\')', raw)
            prefix, q = m.group(1), m.group(2)
            if len(q) == 1 and t.start[0] == t.end[0]:
                body = raw[len(prefix) + 1:-1]
                if '\\' in body and '\\n' not in body and "\\'" not in body and '\\"' not in body: return None
                if '"""' in body: return None
                col = t.start[1]
                wrapped = textwrap.wrap(body, LIMIT - col - 3, break_on_hyphens=False, break_long_words=False)
                head = line[:col]
                tail = line[t.end[1]:]
                new = [head + prefix + '"""' + wrapped[0]] + [' ' * col + w for w in wrapped[1:]]
                new[-1] += '"""' + tail
                return '\n'.join(lines[:i] + new + lines[i + 1:]) + '\n'
            if len(q) == 3:       # inside a triple-quoted docstring: break this physical line at a space
                cut = line.rfind(' ', indent + 1, LIMIT)
                if cut <= indent: return None
                new = [line[:cut].rstrip(), ' ' * indent + line[cut + 1:].lstrip()]
                return '\n'.join(lines[:i] + new + lines[i + 1:]) + '\n'
    # B. break after a comma / before an operator inside brackets; C. split a string
    code = [t for t in on_line if t.start[0] - 1 == i and t.end[0] - 1 == i]
    cands = []
    for k, t in enumerate(code):
        st = depth_at[id(t)]
        if not st: continue
        if t.type == tokenize.OP and t.string == ',' and k + 1 < len(code):
            # not between a comprehension's `for` and its `in` (`for k, v in ...`)
            before = [u for u in code[:k] if depth_at[id(u)] == st and u.type == tokenize.NAME and u.string in ('for', 'in')]
            if before and before[-1].string == 'for': continue
            cands.append((t.end[1], st[-1], 'comma', len(st)))
        elif (t.type == tokenize.NAME and t.string in ('if', 'else', 'and', 'or', 'for') or
              t.type == tokenize.OP and t.string in ('+',)) and k > 0:
            if code[k - 1].type == tokenize.OP and code[k - 1].string in OPEN: continue
            cands.append((t.start[1], st[-1], 'op', len(st)))
    # E. `x = a if c else b` / `return ...` on one line with a conditional at depth 0: parenthesise the value
    if code and code[0].start[1] == indent and code[-1].end[1] == len(line.rstrip()) and \
            not any(depth_at[id(t)] for t in code[:1]) and not depth_at_line_start(toks, i) and \
            any(t.type == tokenize.NEWLINE and t.start[0] - 1 == i for t in toks):
        eq = next((t for t in code if t.type == tokenize.OP and t.string in ('=', '+=') and not depth_at[id(t)]), None)
        start = eq if eq is not None else (code[0] if code[0].string in ('return', 'yield') else None)
        if start is not None and code[0].string not in COMPOUND and start is not code[-1]:
            value = code[code.index(start) + 1:]
            whole_group = value[0].string in OPEN and not any(not depth_at[id(t)] for t in value[1:])
            breakable = any(not depth_at[id(t)] and (t.type == tokenize.NAME and t.string in ('if', 'else', 'and', 'or')
                                                     or t.type == tokenize.OP and t.string in (',', '+', '-', '*', '/', '%', '|'))
                            for t in value[1:])
            if breakable and not whole_group and not any(t.type == tokenize.OP and t.string == ';' and not depth_at[id(t)] for t in value):
                a, b = value[0].start[1], len(line.rstrip())
                return '\n'.join(lines[:i] + [line[:a] + '(' + line[a:b] + ')'] + lines[i + 1:]) + '\n'
        colons = [t for t in code if t.type == tokenize.OP and t.string == ':' and not depth_at[id(t)]]
        if code[0].string in ('if', 'elif', 'while') and colons and colons[0] is code[-1]:
            a, b = code[1].start[1], colons[0].start[1]
            if not (code[1].string in OPEN and not any(not depth_at[id(t)] for t in code[2:-1])):
                return '\n'.join(lines[:i] + [line[:a] + '(' + line[a:b] + '):'] + lines[i + 1:]) + '\n'
    fits = [c for c in cands if c[0] <= LIMIT and c[0] > indent + 8]
    def rest_indent(c):
        ind = c[1].end[1] if c[1].start[0] - 1 == i else indent
        return ind if ind <= 60 else indent + 8
    top = min((c[3] for c in fits), default=0)
    def score(c):
        return (-(c[3] - top), c[2] == 'comma', c[0])
    best = max(fits, key=score) if fits else None
    split_str = None
    for t in code:
        if t.type == tokenize.STRING and t.start[1] < LIMIT < t.end[1] and depth_at[id(t)] and t.start[1] <= 60:
            raw = t.string
            m = re.match(r'([a-zA-Z]*)("""|\'\'\'|"|\')', raw)
            if len(m.group(2)) == 3: continue
            lo = len(m.group(0)) + 5
            for p in range(min(len(raw) - 30, LIMIT - 1 - t.start[1] - 1), lo, -1):
                if raw[p] == ' ' and raw[p - 1] != '\\' and fstring_split_ok(raw, p):
                    split_str = (t, p); break
    if split_str and (best is None or split_str[0].start[1] + split_str[1] > best[0] + 25):
        t, p = split_str
        raw = t.string
        m = re.match(r'([a-zA-Z]*)("""|\'\'\'|"|\')', raw)
        prefix, q = m.group(1), m.group(2)
        first, rest = raw[:p + 1] + q, prefix + q + raw[p + 1:]
        col = t.start[1]
        new = [line[:col] + first, ' ' * col + rest + line[t.end[1]:]]
        return '\n'.join(lines[:i] + new + lines[i + 1:]) + '\n'
    if best:
        col, bracket, kind, _ = best
        ind = bracket.end[1] if bracket.start[0] - 1 == i else indent
        if ind > 60: ind = indent + 8
        head, rest = line[:col].rstrip(), line[col:].lstrip()
        after = lines[i + 1] if i + 1 < len(lines) else ''
        same_statement = bracket.end[0] - 1 <= i and any(t.start[0] - 1 == i + 1 for t in toks if t.type != tokenize.NL) \
            and not any(t.type in (tokenize.NEWLINE, tokenize.COMMENT) and t.start[0] - 1 == i for t in toks)
        last_is_string = rest.rstrip().endswith(('"', "'"))
        if (len(rest) <= 40 and ind + len(rest) + 1 + len(after.lstrip()) <= LIMIT
                and same_statement and len(after) - len(after.lstrip()) == ind and not after.lstrip().startswith('#')
                and depth_at_line_start(toks, i + 1) and not (last_is_string and after.lstrip()[:2].strip('rbfRBF')[:1] in '"\'')):
            return '\n'.join(lines[:i] + [head, ' ' * ind + rest + ' ' + after.lstrip()] + lines[i + 2:]) + '\n'
        new = [head, ' ' * ind + rest]
        return '\n'.join(lines[:i] + new + lines[i + 1:]) + '\n'
    # F. a compound statement with its suite on the line: the suite goes below
    first_tok = code[0] if code else None
    if first_tok is not None and first_tok.type == tokenize.NAME and first_tok.string in COMPOUND - {'async'} \
            and first_tok.start[1] == indent:
        colon = next((t for t in code if t.type == tokenize.OP and t.string == ':' and not depth_at[id(t)]), None)
        if colon is not None and colon is not code[-1]:
            suite = line[colon.end[1]:].strip()
            return '\n'.join(lines[:i] + [line[:colon.end[1]], ' ' * (indent + 4) + suite] + lines[i + 1:]) + '\n'
    # `a; b` at depth 0, not a compound header with its suite on the line
    semis = [t for t in code if t.type == tokenize.OP and t.string == ';' and not depth_at[id(t)]]
    first_tok = code[0] if code else None
    if semis and first_tok is not None and not (first_tok.type == tokenize.NAME and first_tok.string in COMPOUND) \
       and first_tok.start[1] == indent:
        parts, last = [], indent
        for s in semis: parts.append(line[last:s.start[1]].strip()); last = s.end[1]
        parts.append(line[last:].strip())
        new = [' ' * indent + p for p in parts if p]
        return '\n'.join(lines[:i] + new + lines[i + 1:]) + '\n'
    return None


def depth_at_token(toks, token):
    "Are we inside brackets at `token` (counted from the start of its logical line)?"
    depth = 0
    for t in toks:
        if t is token: return depth > 0
        if t.type == tokenize.NEWLINE: depth = 0
        elif t.type == tokenize.OP and t.string in OPEN: depth += 1
        elif t.type == tokenize.OP and t.string in CLOSE: depth -= 1
    return False


def depth_at_line_start(toks, i):
    "Is physical line i (0-based) inside brackets, a continuation of the statement above?"
    depth = 0
    for t in toks:
        if t.start[0] - 1 >= i: return depth > 0
        if t.type == tokenize.NEWLINE: depth = 0
        elif t.type == tokenize.OP and t.string in OPEN: depth += 1
        elif t.type == tokenize.OP and t.string in CLOSE: depth -= 1
    return False


def normalised_ast(src):
    tree = ast.parse(src)
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                first.value.value = ' '.join(first.value.value.split())
    return ast.dump(tree)


def wrap(src, where=''):
    before = normalised_ast(src)
    stuck = set()
    for _ in range(5000):
        lines = src.split('\n')
        if lines and lines[-1] == '': lines = lines[:-1]
        todo = [i for i, l in enumerate(lines) if len(l) > LIMIT and i not in stuck]
        if not todo: break
        i = todo[0]
        new = mend_line(src, lines, i, tokens_of(src), docstring_lines(src))
        if new is None or new == src: stuck.add(i); continue
        try: ok = normalised_ast(new) == before
        except SyntaxError: ok = False
        if not ok: stuck.add(i); continue
        # line numbers after i move; stuck indices after i shift
        shift = new.count('\n') - src.count('\n')
        stuck = {s if s < i else s + shift for s in stuck}
        src = new
    lines = src.split('\n')
    for i, l in enumerate(lines):
        if len(l) > LIMIT: print(f'{where}:{i + 1}: {len(l)}: {l.strip()[:100]}')
    return src


def main(args):
    if args[0] == '--nb':
        for path in args[1:]:
            nb = json.load(open(path))
            for c in nb['cells']:
                s = ''.join(c['source'])
                if c['cell_type'] != 'code' or not re.match(r'#\|\s*exports?\b', s): continue
                new = wrap(s + '\n', f"{path}#{c.get('id')}").rstrip('\n')
                if new != s: c['source'] = new.splitlines(keepends=True)
            with open(path, 'w') as f: json.dump(nb, f, indent=1, ensure_ascii=False); f.write('\n')
    else:
        for path in args:
            s = open(path).read()
            new = wrap(s, path)
            if new != s: open(path, 'w').write(new)


if __name__ == '__main__': main(sys.argv[1:])
