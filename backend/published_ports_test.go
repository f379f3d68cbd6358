package backend

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/moby/moby/api/types/container"
)

// The engine may bind a published port's IPv6 side to another random host
// port than its IPv4 side; denv must list one endpoint, the IPv4 one, in
// whichever order the engine lists them.
func TestPublishedPortsPrefersIPv4(t *testing.T) {
	v4 := container.PortSummary{IP: netip.MustParseAddr("0.0.0.0"), PrivatePort: 8080, PublicPort: 32768, Type: "tcp"}
	v6 := container.PortSummary{IP: netip.MustParseAddr("::"), PrivatePort: 8080, PublicPort: 32769, Type: "tcp"}
	lo := container.PortSummary{IP: netip.MustParseAddr("127.0.0.1"), PrivatePort: 9090, PublicPort: 40000, Type: "tcp"}
	lo6 := container.PortSummary{IP: netip.MustParseAddr("::1"), PrivatePort: 9090, PublicPort: 40001, Type: "tcp"}
	udp6 := container.PortSummary{IP: netip.MustParseAddr("::"), PrivatePort: 8080, PublicPort: 32770, Type: "udp"}
	unpublished := container.PortSummary{PrivatePort: 7000, Type: "tcp"}
	want := []Port{
		{Service: "web", ContainerPort: 8080, HostPort: 32768, Protocol: "tcp"},
		{Service: "web", ContainerPort: 9090, HostPort: 40000, Protocol: "tcp"},
		// an IPv6-only binding is still an endpoint
		{Service: "web", ContainerPort: 8080, HostPort: 32770, Protocol: "udp"},
	}
	for _, in := range [][]container.PortSummary{
		{v6, v4, lo6, lo, udp6, unpublished},
		{v4, v6, lo, lo6, unpublished, udp6},
		{unpublished, lo6, v6, udp6, lo, v4},
	} {
		got := sortPorts(publishedPorts("web", in))
		w := sortPorts(slices.Clone(want))
		if !slices.Equal(got, w) {
			t.Errorf("publishedPorts(%v) = %v, want %v", in, got, w)
		}
	}
	// compose's ps (what denv ps and run's endpoints read) gives the
	// address as a string
	pub := []binding{
		{Port{"web", 8080, 32769, "tcp"}, netip.MustParseAddr("::")},
		{Port{"web", 8080, 32768, "tcp"}, netip.MustParseAddr("0.0.0.0")},
	}
	if got := onePerPort(pub); len(got) != 1 || got[0].HostPort != 32768 {
		t.Errorf("onePerPort(%v) = %v, want the IPv4 binding 32768", pub, got)
	}
	// same host port on both families: one endpoint
	same := []container.PortSummary{v4, {IP: netip.MustParseAddr("::"), PrivatePort: 8080, PublicPort: 32768, Type: "tcp"}}
	if got := publishedPorts("web", same); len(got) != 1 || got[0].HostPort != 32768 {
		t.Errorf("publishedPorts(%v) = %v, want one endpoint on 32768", same, got)
	}
}
