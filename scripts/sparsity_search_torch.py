# PyTorch reference for docs/sparsity-regimes.md: trains BasicNet on a Fashion-MNIST subset and
# prints dead filters per layer (eval-mode max activation < 1e-12) every 500 steps.
# usage: /usr/bin/python3 scripts/sparsity_search_torch.py WIDTH LR LAMBDA BATCH IMAGES STEPS adam|sgd
import sys, time, gzip, numpy as np, torch, torch.nn as nn, torch.nn.functional as F
torch.set_num_threads(1)
def load(kind):
    d='/usr/share/datasets/fashion-mnist/'
    with gzip.open(d+f'{kind}-images-idx3-ubyte.gz') as f: x=np.frombuffer(f.read(),np.uint8,offset=16).reshape(-1,1,28,28)
    with gzip.open(d+f'{kind}-labels-idx1-ubyte.gz') as f: y=np.frombuffer(f.read(),np.uint8,offset=8)
    return torch.tensor(x,dtype=torch.float32)/255., torch.tensor(y,dtype=torch.long)
X,Y=load('train'); X=(X-0.286)/0.353
def net(w):
    ws=[max(1,round(c*w)) for c in [64,128,128,256,256,512,512]]
    L=[];cin=1
    for i,c in enumerate(ws):
        L+=[nn.Conv2d(cin,c,3,padding=1,bias=False),nn.BatchNorm2d(c),nn.ReLU()]
        if i in (1,3,5): L.append(nn.MaxPool2d(2))
        cin=c
    return nn.Sequential(*L,nn.AdaptiveAvgPool2d(1),nn.Flatten(),nn.Linear(cin,10))
def dead(m,x):
    m.eval(); mx={}
    with torch.no_grad():
        for i in range(0,len(x),1000):
            h=x[i:i+1000]
            for j,l in enumerate(m):
                h=l(h)
                if isinstance(l,nn.ReLU):
                    a=h.abs().amax(dim=(2,3)).amax(0)
                    mx[j]=torch.maximum(mx.get(j,a*0),a)
    m.train()
    return [int((v<1e-12).sum()) for v in mx.values()]
def gdead(m): return [int((l.weight.abs()<1e-3).sum()) for l in m if isinstance(l,nn.BatchNorm2d)]
w,lr,lam,bs,n,steps,opt=float(sys.argv[1]),float(sys.argv[2]),float(sys.argv[3]),int(sys.argv[4]),int(sys.argv[5]),int(sys.argv[6]),sys.argv[7]
torch.manual_seed(0); m=net(w); x=X[:n]; y=Y[:n]
o=torch.optim.Adam(m.parameters(),lr=lr,weight_decay=lam) if opt=='adam' else torch.optim.SGD(m.parameters(),lr=lr,momentum=0.9,weight_decay=lam)
t=time.time();s=0
while s<steps:
    p=torch.randperm(n)
    for i in range(0,n-bs+1,bs):
        idx=p[i:i+bs]; l=F.cross_entropy(m(x[idx]),y[idx]); o.zero_grad(); l.backward(); o.step(); s+=1
        if s%500==0 or s==steps: print(f'w={w} lr={lr} lam={lam} bs={bs} step={s} loss={l.item():.3f} dead={dead(m,x)} gdead={gdead(m)} t={time.time()-t:.0f}',flush=True)
        if s>=steps: break
