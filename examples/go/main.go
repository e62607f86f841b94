// The libmfa example every binding repeats (see examples/c/attention.c), through the Go package:
// the seed README's program (library buffers, the 19-argument forward), then multi-head GQA
// causal attention with the log-sum-exp on Go slices. Prints the same numbers as the C program.
//
// `attention bench [calls]` times the per-call cost on a tiny shape (batch 1, 1 head, seq 1,
// dim 8, one cpu thread) through the binding, to compare with examples/c's `attention bench`.
//
// Run: cd examples/go && go run . [bench]
package main

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"time"

	"mfa"
)

// fill writes the example's inputs: uniform in [-1, 1), the same sequence in every language.
func fill(x []float32, state *uint64) {
	for i := range x {
		*state = *state*6364136223846793005 + 1442695040888963407
		x[i] = float32((*state>>40)&0xffffff)/16777216.0*2.0 - 1.0
	}
}

func summary(name string, x []float32) {
	var sum float64
	for _, v := range x {
		sum += float64(v)
	}
	fmt.Printf("%s[0..4] = %.6f %.6f %.6f %.6f  sum = %.6f\n", name, x[0], x[1], x[2], x[3], sum)
}

// seedExample is the seed README's example.
func seedExample() error {
	const seqLen, headDim = 128, 64
	const count = seqLen * headDim
	context, err := mfa.NewContext()
	if err != nil {
		return err
	}
	defer context.Close()
	var buffers [4]*mfa.Buffer
	for i := range buffers {
		if buffers[i], err = context.CreateBuffer(count * 4); err != nil {
			return err
		}
	}
	rng := uint64(1)
	for _, b := range buffers[:3] {
		x, err := b.Float32s()
		if err != nil {
			return err
		}
		fill(x, &rng)
	}
	err = context.AttentionForward(buffers[0], buffers[1], buffers[2], buffers[3], mfa.SeedForward{
		BatchSize: 1, SeqLenQ: seqLen, SeqLenKV: seqLen, NumHeads: 1, HeadDim: headDim,
		SoftmaxScale: float32(1 / math.Sqrt(headDim)), Causal: false,
		InputPrecision: mfa.PrecisionFP32, IntermediatePrecision: mfa.PrecisionFP32, OutputPrecision: mfa.PrecisionFP32,
	})
	if err != nil {
		return err
	}
	out, err := buffers[3].Float32s()
	if err != nil {
		return err
	}
	fmt.Printf("seed example: batch 1, 1 head, seq %d, head_dim %d, fp32\n", seqLen, headDim)
	summary("  out", out)
	return nil
}

// multiheadCausal runs multi-head GQA causal attention with LSE through Params.
func multiheadCausal() error {
	const batch, seq, headsQ, headsKV, dim = 2, 128, 8, 2, 64
	q := make([]float32, batch*seq*headsQ*dim)
	k := make([]float32, batch*seq*headsKV*dim)
	v := make([]float32, len(k))
	o := make([]float32, len(q))
	lse := make([]float32, batch*headsQ*seq)
	rng := uint64(2)
	fill(q, &rng)
	fill(k, &rng)
	fill(v, &rng)

	ctx, err := mfa.NewContext()
	if err != nil {
		return err
	}
	defer ctx.Close()
	p := mfa.NewParams()
	p.Batch, p.SeqlenQ, p.SeqlenKV = batch, seq, seq
	p.HeadsQ, p.HeadsKV = headsQ, headsKV // GQA: 4 query heads per kv head
	p.HeadDimQK, p.HeadDimV = dim, dim
	p.Q = mfa.F32(q).Contiguous(seq, headsQ, dim) // [batch, seq, heads, dim]
	p.K = mfa.F32(k).Contiguous(seq, headsKV, dim)
	p.V = mfa.F32(v).Contiguous(seq, headsKV, dim)
	p.O = mfa.F32(o).Contiguous(seq, headsQ, dim)
	p.LSE = lse // [batch, heads_q, seq]
	p.Mask = mfa.MaskCausal
	if err := ctx.Forward(&p); err != nil {
		return err
	}
	fmt.Printf("multi-head causal: batch %d, heads %d/%d (GQA), seq %d, head_dim %d, fp32\n", batch, headsQ, headsKV, seq, dim)
	summary("  out", o)
	summary("  lse", lse)
	return nil
}

// bench times Context.Forward on a tiny problem: the best of 5 rounds of calls.
func bench(calls int) error {
	ctx, err := mfa.NewContextWithOptions(mfa.Options{Backend: mfa.BackendCPU, NumThreads: 1})
	if err != nil {
		return err
	}
	defer ctx.Close()
	q, k, v, o := make([]float32, 8), make([]float32, 8), make([]float32, 8), make([]float32, 8)
	rng := uint64(3)
	fill(q, &rng)
	fill(k, &rng)
	fill(v, &rng)
	p := mfa.NewParams()
	p.Batch, p.SeqlenQ, p.SeqlenKV, p.HeadsQ, p.HeadsKV, p.HeadDimQK, p.HeadDimV = 1, 1, 1, 1, 1, 8, 8
	p.Q, p.K = mfa.F32(q).Contiguous(1, 1, 8), mfa.F32(k).Contiguous(1, 1, 8)
	p.V, p.O = mfa.F32(v).Contiguous(1, 1, 8), mfa.F32(o).Contiguous(1, 1, 8)
	best := math.Inf(1)
	for round := 0; round < 5; round++ {
		start := time.Now()
		for i := 0; i < calls; i++ {
			if err := ctx.Forward(&p); err != nil {
				return err
			}
		}
		best = math.Min(best, time.Since(start).Seconds()/float64(calls)*1e6)
	}
	fmt.Printf("go: %.3f us/call (best of 5 x %d calls; batch 1, 1 head, seq 1, dim 8, 1 thread)\n", best, calls)
	return nil
}

func main() {
	var err error
	if len(os.Args) > 1 && os.Args[1] == "bench" {
		calls := 200000
		if len(os.Args) > 2 {
			if calls, err = strconv.Atoi(os.Args[2]); err != nil {
				fmt.Fprintln(os.Stderr, "calls: a number")
				os.Exit(2)
			}
		}
		err = bench(calls)
	} else {
		major, minor, patch := mfa.Version()
		fmt.Printf("libmfa %d.%d.%d\n", major, minor, patch)
		if err = seedExample(); err == nil {
			err = multiheadCausal()
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
