package mfa

import (
	"os"
	"testing"
	"time"
)

func tinyContext(b *testing.B) (*Context, Params) {
	ctx, err := NewContextWithOptions(Options{Backend: BackendCPU, NumThreads: 1})
	if err != nil {
		b.Fatal(err)
	}
	q, k, v, o := make([]float32, 8), make([]float32, 8), make([]float32, 8), make([]float32, 8)
	p := NewParams()
	p.Batch, p.SeqlenQ, p.SeqlenKV, p.HeadsQ, p.HeadsKV, p.HeadDimQK, p.HeadDimV = 1, 1, 1, 1, 1, 8, 8
	p.Q, p.K = F32(q).Contiguous(1, 1, 8), F32(k).Contiguous(1, 1, 8)
	p.V, p.O = F32(v).Contiguous(1, 1, 8), F32(o).Contiguous(1, 1, 8)
	return ctx, p
}

// BenchmarkForwardTiny: one Context.Forward on batch 1, 1 head, seq 1, dim 8, one cpu thread.
func BenchmarkForwardTiny(b *testing.B) {
	ctx, p := tinyContext(b)
	defer ctx.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := ctx.Forward(&p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDirectC: the same problem through mfa_attention_fwd called in a C loop (the baseline).
func BenchmarkDirectC(b *testing.B) {
	ctx, _ := tinyContext(b)
	defer ctx.Close()
	b.ResetTimer()
	var elapsed time.Duration
	if b.N > 0 {
		elapsed = directLoop(ctx, b.N)
	}
	b.StopTimer()
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N), "ns/C-call")
}

// TestOverhead (MFA_BENCH=1 go test -run Overhead -v) prints the binding's per-call overhead
// against the direct C call on the same context: 20 interleaved rounds, best of each.
func TestOverhead(t *testing.T) {
	if os.Getenv("MFA_BENCH") == "" {
		t.Skip("set MFA_BENCH=1 to measure")
	}
	ctx, err := NewContextWithOptions(Options{Backend: BackendCPU, NumThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Close()
	q, k, v, o := make([]float32, 8), make([]float32, 8), make([]float32, 8), make([]float32, 8)
	p := NewParams()
	p.Batch, p.SeqlenQ, p.SeqlenKV, p.HeadsQ, p.HeadsKV, p.HeadDimQK, p.HeadDimV = 1, 1, 1, 1, 1, 8, 8
	p.Q, p.K = F32(q).Contiguous(1, 1, 8), F32(k).Contiguous(1, 1, 8)
	p.V, p.O = F32(v).Contiguous(1, 1, 8), F32(o).Contiguous(1, 1, 8)
	const calls = 50000
	binding, direct := time.Duration(1<<62), time.Duration(1<<62)
	for round := 0; round < 20; round++ {
		start := time.Now()
		for i := 0; i < calls; i++ {
			if err := ctx.Forward(&p); err != nil {
				t.Fatal(err)
			}
		}
		if d := time.Since(start); d < binding {
			binding = d
		}
		if d := directLoop(ctx, calls); d < direct {
			direct = d
		}
	}
	b, d := binding.Seconds()/calls*1e6, direct.Seconds()/calls*1e6
	t.Logf("go: %.3f us/call; direct C call %.3f us/call; overhead %.3f us (best of 20 x %d calls each; batch 1, 1 head, seq 1, dim 8, 1 thread)",
		b, d, b-d, calls)
}
