import gzip,sys,collections
d=gzip.decompress(open(sys.argv[1],'rb').read())
def varint(b,i):
    r=s=0
    while True:
        c=b[i]; i+=1; r|=(c&0x7f)<<s; s+=7
        if c<0x80: return r,i
def fields(b):
    i=0
    while i<len(b):
        k,i=varint(b,i); f,t=k>>3,k&7
        if t==0: v,i=varint(b,i)
        elif t==2:
            l,i=varint(b,i); v=b[i:i+l]; i+=l
        else: raise Exception(t)
        yield f,t,v
def packed(v,t):
    if t==0: return [v]
    out=[];i=0
    while i<len(v):
        x,i=varint(v,i); out.append(x)
    return out
strs=[];samples=[];locs={};funcs={}
for f,t,v in fields(d):
    if f==6: strs.append(v.decode())
    elif f==2:
        s={'loc':[],'val':[]}
        for g,tt,w in fields(v):
            if g==1: s['loc']+=packed(w,tt)
            if g==2: s['val']+=packed(w,tt)
        samples.append(s)
    elif f==4:
        lid=0;lines=[]
        for g,tt,w in fields(v):
            if g==1: lid=w
            if g==4: lines.append(dict((h,x) for h,_,x in fields(w)))
        locs[lid]=lines
    elif f==5:
        fd=dict((h,x) for h,_,x in fields(v)); funcs[fd.get(1)]=fd
name=lambda fid: strs[funcs[fid].get(2,0)]
leaf=collections.Counter(); root=collections.Counter()
for s in samples:
    l=s['loc']
    if not l: continue
    leaf[name(locs[l[0]][0].get(1))]+=s['val'][0]
    root[name(locs[l[-1]][-1].get(1))]+=s['val'][0]
print(len(samples),'samples', len(strs),'strings')
print('leaf:',leaf.most_common(12))
print('root:',root.most_common(5))
s=max(samples,key=lambda s:s['val'][0])
print([name(ln.get(1)) for lid in s['loc'] for ln in locs[lid]][:25])
