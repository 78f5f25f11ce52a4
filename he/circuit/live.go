package circuit

// LiveSlots returns, for every op, which slots of its output (over the
// ciphertext of Layout.Slots() slots) can influence the circuit's
// result slots: a backward liveness analysis through the op graph (a
// plaintext product by 0 or a zero matrix entry kills the dependency). Other
// slots hold by-products (e.g. the reciprocal outside the heads' first
// slots) that later ops discard; Bench measures per-layer errors on live
// slots only.
func (c *Circuit) LiveSlots() [][]bool {
	L := c.Layout
	S := L.Slots()
	D := L.Block
	live := make([][]bool, len(c.Ops))
	get := func(i int) []bool {
		if live[i] == nil {
			live[i] = make([]bool, S)
		}
		return live[i]
	}
	mod := func(s int) int {
		s %= S
		if s < 0 {
			s += S
		}
		return s
	}
	outTokens := L.OutputTokens / L.OutputCiphertexts() // the result tokens of each output ciphertext
	for i := len(c.Ops) - 1; i >= 0; i-- {
		op := c.Ops[i]
		out := get(i)
		if op.Kind == KindOutput {
			for t := 0; t < outTokens; t++ {
				for b := 0; b < L.Batch; b++ {
					for j := 0; j < L.Outputs; j++ {
						out[L.Slot(t, b, j)] = true
					}
				}
			}
		}
		switch op.Kind {
		case KindInput:
		case KindLinear:
			m := c.Mats[op.Mat]
			in := get(op.In[0])
			for k := 0; k < S/D; k++ {
				blk := m.Blocks[0]
				if len(m.Blocks) > 1 {
					blk = m.Blocks[(k/L.Batch)%L.BlockTokens()]
				}
				for r := 0; r < D; r++ {
					if !out[k*D+r] {
						continue
					}
					for j := 0; j < D; j++ {
						if blk[r*D+j] != 0 {
							in[k*D+j] = true
						}
					}
				}
			}
		case KindMulPlain:
			v := c.expand(c.Vecs[op.Vec])
			in := get(op.In[0])
			for s, l := range out {
				if l && v[s] != 0 {
					in[s] = true
				}
			}
		case KindMulConst:
			if op.Const != 0 {
				or(get(op.In[0]), out)
			}
		case KindRotate:
			in := get(op.In[0])
			for s, l := range out {
				if l {
					in[mod(s+op.Rot[0])] = true
				}
			}
		case KindRotSum:
			need := append([]bool(nil), out...)
			for j := len(op.Rot) - 1; j >= 0; j-- {
				prev := append([]bool(nil), need...)
				for s, l := range need {
					if l {
						prev[mod(s+op.Rot[j])] = true
					}
				}
				need = prev
			}
			or(get(op.In[0]), need)
		case KindMatchScale:
			or(get(op.In[0]), out)
		default: // elementwise: add, sub, add_plain, add_const, mul, poly, bootstrap, output
			for _, in := range op.In {
				or(get(in), out)
			}
		}
	}
	return live
}

func or(dst, src []bool) {
	for i, v := range src {
		if v {
			dst[i] = true
		}
	}
}
