package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// leafLoader asks a Consul agent for leaf certificates of service names it
// has never been asked for, so each successful call is a new issuance: the
// agent makes a key and a CSR, and its servers' CA signs it.
type leafLoader struct {
	base   string
	prefix string
	client *http.Client
	next   atomic.Uint64
}

// leafAnswer is the part of Consul's IssuedCert the check reads.
type leafAnswer struct {
	Service string `json:"Service"`
	CertPEM string `json:"CertPEM"`
}

func newLeafLoader(base, prefix string, conns int) (*leafLoader, error) {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return nil, usagef("--consul-leaf %q is not http://HOST:PORT", base)
	}
	transport := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: 0, IdleConnTimeout: time.Minute}
	return &leafLoader{base: strings.TrimSuffix(base, "/"), prefix: prefix, client: &http.Client{Transport: transport, Timeout: callTimeout}}, nil
}

func (l *leafLoader) call(p *phase) bool {
	name := fmt.Sprintf("%s-%d", l.prefix, l.next.Add(1))
	if err := l.issue(name); err != nil {
		p.errors.Add(1)
		msg := err.Error()
		p.firstError.CompareAndSwap(nil, &msg)
		return false
	}
	return true
}

// issue GETs the leaf of one service and checks that the answer is a
// certificate for that service.
func (l *leafLoader) issue(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.base+"/v1/agent/connect/ca/leaf/"+url.PathEscape(name), nil)
	if err != nil {
		return err
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("leaf %s: reading the answer: %w", name, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("leaf %s: HTTP %d: %s", name, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	var answer leafAnswer
	if err := json.Unmarshal(body, &answer); err != nil {
		return fmt.Errorf("leaf %s: the answer is not JSON: %w", name, err)
	}
	if answer.Service != name || !strings.HasPrefix(answer.CertPEM, "-----BEGIN CERTIFICATE-----") {
		return fmt.Errorf("leaf %s: the answer is for service %q and carries no PEM certificate", name, answer.Service)
	}
	return nil
}
