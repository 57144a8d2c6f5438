import re,subprocess
conf=open('/work/shared/reference/conformance.yaml').read()
entries=[]
for m in re.finditer(r"- testname: (.*?)\n  codename: '(.*?)'\n", conf, re.S):
    tn=' '.join(m.group(1).split()); cn=' '.join(m.group(2).split())
    sig=re.match(r'\[(sig-[a-z-]+)\]',cn)
    phrase=re.sub(r'\[[^\]]*\]','',cn).strip()
    entries.append((tn,cn,sig.group(1) if sig else '?',phrase))
def snake(s): return re.sub(r'[^a-z0-9]+','_',s.lower()).strip('_')
files=subprocess.check_output(['git','ls-files','*.rs']).decode().split()
found={}
for f in files:
    lines=open(f).read().split('\n')
    for i,l in enumerate(lines):
        m=re.match(r'\s*(?:pub )?(?:async )?fn (\w+)\(',l)
        if not m: continue
        name=m.group(1)
        doc=[];j=i-1
        while j>=0 and (lines[j].strip().startswith('///') or lines[j].strip().startswith('#[')):
            doc.insert(0,lines[j].strip().lstrip('/').strip()); j-=1
        doc=' '.join(doc)
        for tn,cn,sig,phrase in entries:
            if ('"%s"'%tn in doc) or ('"%s'%tn in doc and len(tn)>12) or (len(phrase)>20 and phrase in doc) or (len(snake(tn))>15 and snake(tn) in name) or (len(snake(phrase))>25 and snake(phrase) in name):
                found.setdefault((sig,tn),set()).add(f"`{f}` `{name}`")
out=["# Conformance map","","Each row is an upstream conformance test (`../shared/reference/conformance.yaml`) and the tests here named after it, found by `python3 hack/conformance-map.py` from the test names and their doc comments. A row means the test proves the behaviour the conformance test demands, as far as the row's test goes; it does not mean the upstream test binary was run.",""]
bysig={}
for (sig,tn),v in found.items(): bysig.setdefault(sig,[]).append((tn,sorted(v)))
total=sum(len(v) for v in bysig.values())
out.append(f"{total} of {len(entries)} conformance tests have a test here.\n")
out.append("| SIG | count |\n|---|---|")
for sig in sorted(bysig): out.append(f"| {sig} | {len(bysig[sig])} |")
out.append("")
for sig in sorted(bysig):
    out.append(f"## {sig}\n\n| conformance test | tests here |\n|---|---|")
    for tn,v in sorted(bysig[sig]): out.append(f"| {tn} | {'<br>'.join(v)} |")
    out.append("")
open('docs/conformance.md','w').write('\n'.join(out))
print(total)
