// Command svid-verify checks an X.509-SVID chain against a trust bundle with
// go-spiffe's x509svid.ParseAndVerify, an independent verifier for the tests of
// the mesh's certificate authority.
//
//	svid-verify --svid CHAIN.pem --bundle ROOTS.pem [--at RFC3339]
//	svid-verify --version
//
// It prints one JSON line: {"ok":true,"spiffe_id":...,"chains":N,"leaf":{...}}
// and exits 0, or {"ok":false,"error":"<go-spiffe's message>"} and exits 1.
// Usage errors (bad flags, unreadable files) exit 2 with a message on stderr.
package main

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

const spiffeModule = "github.com/spiffe/go-spiffe/v2"

type leafInfo struct {
	Serial      string   `json:"serial"`
	NotBefore   string   `json:"not_before"`
	NotAfter    string   `json:"not_after"`
	IsCA        bool     `json:"is_ca"`
	KeyUsage    []string `json:"key_usage"`
	ExtKeyUsage []string `json:"ext_key_usage"`
	URISANs     []string `json:"uri_sans"`
	DNSSANs     []string `json:"dns_sans"`
}

type success struct {
	OK       bool     `json:"ok"`
	SpiffeID string   `json:"spiffe_id"`
	Chains   int      `json:"chains"`
	Leaf     leafInfo `json:"leaf"`
}

type failure struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
}

var keyUsageNames = []struct {
	bit  x509.KeyUsage
	name string
}{
	{x509.KeyUsageDigitalSignature, "digitalSignature"},
	{x509.KeyUsageContentCommitment, "contentCommitment"},
	{x509.KeyUsageKeyEncipherment, "keyEncipherment"},
	{x509.KeyUsageDataEncipherment, "dataEncipherment"},
	{x509.KeyUsageKeyAgreement, "keyAgreement"},
	{x509.KeyUsageCertSign, "keyCertSign"},
	{x509.KeyUsageCRLSign, "cRLSign"},
	{x509.KeyUsageEncipherOnly, "encipherOnly"},
	{x509.KeyUsageDecipherOnly, "decipherOnly"},
}

var extKeyUsageNames = map[x509.ExtKeyUsage]string{
	x509.ExtKeyUsageAny:             "any",
	x509.ExtKeyUsageServerAuth:      "serverAuth",
	x509.ExtKeyUsageClientAuth:      "clientAuth",
	x509.ExtKeyUsageCodeSigning:     "codeSigning",
	x509.ExtKeyUsageEmailProtection: "emailProtection",
	x509.ExtKeyUsageTimeStamping:    "timeStamping",
	x509.ExtKeyUsageOCSPSigning:     "OCSPSigning",
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("svid-verify", flag.ContinueOnError)
	flags.SetOutput(stderr)
	svidPath := flags.String("svid", "", "PEM file: the X.509-SVID chain, leaf first, then intermediates")
	bundlePath := flags.String("bundle", "", "PEM file: the root certificates of the trust domain")
	at := flags.String("at", "", "verify at this time (RFC 3339) instead of now")
	version := flags.Bool("version", false, "print the go-spiffe module version and exit")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if *version {
		fmt.Fprintf(stdout, "svid-verify go-spiffe/v2 %s\n", spiffeVersion())
		return 0
	}
	if *svidPath == "" || *bundlePath == "" || flags.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: svid-verify --svid CHAIN.pem --bundle ROOTS.pem [--at RFC3339] | --version")
		return 2
	}
	var opts []x509svid.VerifyOption
	if *at != "" {
		when, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			fmt.Fprintf(stderr, "svid-verify: --at: %v\n", err)
			return 2
		}
		opts = append(opts, x509svid.WithTime(when))
	}
	chainPEM, err := os.ReadFile(*svidPath)
	if err != nil {
		fmt.Fprintf(stderr, "svid-verify: %v\n", err)
		return 2
	}
	bundlePEM, err := os.ReadFile(*bundlePath)
	if err != nil {
		fmt.Fprintf(stderr, "svid-verify: %v\n", err)
		return 2
	}
	out, err := verify(chainPEM, bundlePEM, opts)
	if err != nil {
		return emit(stdout, failure{OK: false, Error: err.Error()}, 1)
	}
	return emit(stdout, out, 0)
}

// verify derives the trust domain from the leaf's SPIFFE ID, loads the roots as
// that trust domain's bundle and lets go-spiffe decide. If the leaf has no
// usable SPIFFE ID, an empty bundle set is passed so the error is go-spiffe's.
func verify(chainPEM, bundlePEM []byte, opts []x509svid.VerifyOption) (*success, error) {
	rawCerts := pemBlocks(chainPEM)
	var source x509bundle.Source = x509bundle.NewSet()
	if len(rawCerts) > 0 {
		if leaf, err := x509.ParseCertificate(rawCerts[0]); err == nil {
			if id, err := x509svid.IDFromCert(leaf); err == nil {
				bundle, err := x509bundle.Parse(id.TrustDomain(), bundlePEM)
				if err != nil {
					return nil, err
				}
				source = bundle
			}
		}
	}
	id, chains, err := x509svid.ParseAndVerify(rawCerts, source, opts...)
	if err != nil {
		return nil, err
	}
	leaf := chains[0][0]
	return &success{OK: true, SpiffeID: id.String(), Chains: len(chains), Leaf: describe(leaf)}, nil
}

func pemBlocks(data []byte) [][]byte {
	var out [][]byte
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return out
		}
		if block.Type == "CERTIFICATE" {
			out = append(out, block.Bytes)
		}
	}
}

func describe(cert *x509.Certificate) leafInfo {
	info := leafInfo{
		Serial:      fmt.Sprintf("%X", cert.SerialNumber),
		NotBefore:   cert.NotBefore.UTC().Format(time.RFC3339),
		NotAfter:    cert.NotAfter.UTC().Format(time.RFC3339),
		IsCA:        cert.IsCA,
		KeyUsage:    []string{},
		ExtKeyUsage: []string{},
		URISANs:     []string{},
		DNSSANs:     append([]string{}, cert.DNSNames...),
	}
	for _, ku := range keyUsageNames {
		if cert.KeyUsage&ku.bit != 0 {
			info.KeyUsage = append(info.KeyUsage, ku.name)
		}
	}
	for _, eku := range cert.ExtKeyUsage {
		name, ok := extKeyUsageNames[eku]
		if !ok {
			name = fmt.Sprintf("unknown(%d)", eku)
		}
		info.ExtKeyUsage = append(info.ExtKeyUsage, name)
	}
	for _, oid := range cert.UnknownExtKeyUsage {
		info.ExtKeyUsage = append(info.ExtKeyUsage, oid.String())
	}
	for _, uri := range cert.URIs {
		info.URISANs = append(info.URISANs, uri.String())
	}
	return info
}

func spiffeVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, dep := range info.Deps {
		if dep.Path == spiffeModule {
			if dep.Replace != nil {
				return dep.Replace.Version
			}
			return dep.Version
		}
	}
	return "unknown"
}

func emit(w io.Writer, v any, code int) int {
	line, err := json.Marshal(v)
	if err != nil {
		line, _ = json.Marshal(failure{OK: false, Error: errors.Join(errors.New("svid-verify: encoding the result"), err).Error()})
		code = 1
	}
	fmt.Fprintln(w, string(line))
	return code
}
