"""InstructionReader: E_T for small presets, starting from pretrained token embeddings rather than from nothing.

A frozen (vocab, table_dim) table that a pinned package ships (``reasonbrain.pretrained_words``; referenced by
the checkpoint, never copied into it) -> a trainable projection -> a small pre-norm transformer. Its output has
the contract of ``CLIPTextModel(...).last_hidden_state`` (B, L, hidden_size); ``to_llm`` projects the same states
into the MLLM's embedding space, where they take the instruction's place in the MLLM sequence.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from reasonbrain.models.layers import TransformerEncoder
from reasonbrain.pretrained_words import load_table


class InstructionReader(ModelMixin, ConfigMixin):
    @register_to_config
    def __init__(
        self,
        *,
        table_name: str,
        vocab_size: int,
        table_dim: int,
        hidden_size: int,
        llm_hidden_size: int,
        num_layers: int = 2,
        num_heads: int = 4,
        ff_mult: int = 2,
        max_length: int = 64,
        llm_mlp: int = 0,
    ) -> None:
        super().__init__()
        # the pretrained table: frozen, not saved (persistent=False); filled by load_pretrained_table()
        self.register_buffer("table", torch.zeros(vocab_size, table_dim), persistent=False)
        self.table_loaded = False
        self.proj = nn.Linear(table_dim, hidden_size)
        self.pos = nn.Parameter(torch.randn(1, max_length, hidden_size) * 0.02)
        self.encoder = TransformerEncoder(dim=hidden_size, num_heads=num_heads, num_layers=num_layers, ff_mult=ff_mult)
        # into the MLLM's space: linear, or (llm_mlp > 0) an MLP with that hidden width, which can reach more of the
        # d_llm-dimensional space than a linear map of D_t < d_llm states
        self.to_llm = nn.Linear(hidden_size, llm_hidden_size) if llm_mlp <= 0 else nn.Sequential(
            nn.Linear(hidden_size, llm_mlp), nn.GELU(), nn.Linear(llm_mlp, llm_hidden_size))

    def load_pretrained_table(self) -> InstructionReader:
        """Fill the frozen table from its pinned package (checks package, version and sha256)."""
        values = load_table(self.config.table_name)
        if values.shape != tuple(self.table.shape):
            raise ValueError(f"pretrained table {self.config.table_name} is {values.shape}, the reader expects "
                             f"{tuple(self.table.shape)}")
        self.table = torch.from_numpy(np.array(values)).to(device=self.proj.weight.device, dtype=self.proj.weight.dtype)
        self.table_loaded = True
        return self

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """input_ids, attention_mask (B, L) -> hidden states (B, L, hidden_size)."""
        if not self.table_loaded:
            raise ValueError("the reader's pretrained table is not loaded; call load_pretrained_table()")
        length = input_ids.shape[1]
        if length > self.config.max_length:
            raise ValueError(f"at most {self.config.max_length} tokens, got {length}")
        words = F.embedding(input_ids, self.table).to(self.proj.weight.dtype)  # (B, L, table_dim), frozen
        x = self.proj(words) + self.pos[:, :length]  # (B, L, D)
        return self.encoder(x, padding_mask=attention_mask == 0)  # (B, L, D)
