"""PyTorch eager peer: the MLP and BERT-mini workloads, AdamW, one measurement per process."""

import math

from common import (BERT, EPSILON, INIT_STDDEV, LEARNING_RATE, LN_EPSILON, MLP, WEIGHT_DECAY,
                    masked_rows, measure, parse_args, report)

ARGS = parse_args()

import torch  # noqa: E402  (threads are set in the environment first)
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

torch.set_num_threads(ARGS.threads)
torch.manual_seed(0)


def init(module):
    """Normal(0.02) weights and embeddings, zero biases (LayerNorm keeps ones/zeros)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=INIT_STDDEV)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)


class Layer(nn.Module):
    """Post-LayerNorm transformer block, as Grove's BertEncoder."""

    def __init__(self, b):
        super().__init__()
        h = b["hidden"]
        self.q, self.k, self.v, self.o = (nn.Linear(h, h) for _ in range(4))
        self.f1, self.f2 = nn.Linear(h, b["ffn"]), nn.Linear(b["ffn"], h)
        self.ln1, self.ln2 = nn.LayerNorm(h, eps=LN_EPSILON), nn.LayerNorm(h, eps=LN_EPSILON)
        self.heads = b["heads"]

    def forward(self, x, bias, batch, seq):
        h = x.shape[-1]
        dh = h // self.heads
        split = lambda t: t.view(batch, seq, self.heads, dh).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.q(x) / math.sqrt(dh)), split(self.k(x)), split(self.v(x))
        p = torch.softmax(q @ k.transpose(-1, -2) + bias, dim=-1)
        context = (p @ v).transpose(1, 2).reshape(batch * seq, h)
        x = self.ln1(x + self.o(context))
        return self.ln2(x + self.f2(F.gelu(self.f1(x))))


class Bert(nn.Module):
    """BERT-mini masked LM: embeddings, 4 layers, MLM head with a tied decoder."""

    def __init__(self, b):
        super().__init__()
        h = b["hidden"]
        self.word = nn.Embedding(b["vocab"], h)
        self.position = nn.Embedding(b["seq"], h)
        self.token_type = nn.Embedding(b["types"], h)
        self.ln_e = nn.LayerNorm(h, eps=LN_EPSILON)
        self.layers = nn.ModuleList(Layer(b) for _ in range(b["layers"]))
        self.transform = nn.Linear(h, h)
        self.ln_t = nn.LayerNorm(h, eps=LN_EPSILON)
        self.decoder_bias = nn.Parameter(torch.zeros(b["vocab"]))

    def forward(self, ids, types, mask, rows):
        batch, seq = ids.shape
        x = self.word(ids) + self.position.weight[:seq] + self.token_type(types)
        x = self.ln_e(x.view(batch * seq, -1))
        bias = ((1.0 - mask) * -10000.0).view(batch, 1, 1, seq)
        for layer in self.layers:
            x = layer(x, bias, batch, seq)
        m = self.ln_t(F.gelu(self.transform(x.index_select(0, rows))))
        return m @ self.word.weight.t() + self.decoder_bias


def mlp_step():
    sizes = MLP["sizes"]
    model = nn.Sequential(nn.Linear(sizes[0], sizes[1]), nn.ReLU(),
                          nn.Linear(sizes[1], sizes[2]), nn.ReLU(),
                          nn.Linear(sizes[2], sizes[3]))
    model.apply(init)
    x = torch.rand(MLP["batch"], sizes[0]) * 2 - 1
    y = torch.randint(0, sizes[3], (MLP["batch"],))
    return model, lambda: F.cross_entropy(model(x), y)


def bert_step():
    b = BERT
    model = Bert(b)
    model.apply(init)
    ids = torch.randint(0, b["vocab"], (b["batch"], b["seq"]))
    types = torch.zeros_like(ids)
    mask = torch.ones(b["batch"], b["seq"])
    rows = torch.tensor(masked_rows())
    labels = torch.randint(0, b["vocab"], (len(rows),))
    return model, lambda: F.cross_entropy(model(ids, types, mask, rows), labels)


def main():
    model, loss_fn = mlp_step() if ARGS.workload == "mlp" else bert_step()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, eps=EPSILON,
                                  weight_decay=WEIGHT_DECAY)

    def step():
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        optimizer.step()
        return loss.item()

    ms = measure(step, ARGS.warmup, ARGS.steps)
    report("torch", ARGS.workload, ms, torch.get_num_threads(), {"torch": torch.__version__})


if __name__ == "__main__":
    main()
