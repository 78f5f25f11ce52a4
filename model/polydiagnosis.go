package model

import (
	"fmt"
	"strings"
)

// PolyDiagnosis describes, in forward order, every site of stats (from
// PolyStats) whose poly-mode inputs left its interval or whose outputs were
// NaN or infinite: name, counts, interval and input extremes. The first site
// named is the earliest in the forward pass that went wrong; the later ones
// may only receive its consequences. It returns "" when every site stayed in
// its interval and finite.
func PolyDiagnosis(stats []SiteStats) string {
	var parts []string
	for _, s := range stats {
		if s.Outside == 0 && s.NonFinite == 0 {
			continue
		}
		d := fmt.Sprintf("site %s (%s): %d of %d inputs outside [%.4g, %.4g], inputs in [%.4g, %.4g]",
			s.Site, s.Kind, s.Outside, s.Total, s.Interval[0], s.Interval[1], s.Inputs[0], s.Inputs[1])
		if s.NonFinite > 0 {
			d += fmt.Sprintf(", %d non-finite outputs", s.NonFinite)
		}
		parts = append(parts, d)
	}
	return strings.Join(parts, "; ")
}
