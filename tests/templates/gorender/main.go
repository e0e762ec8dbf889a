// Command gorender renders Go text/template + sprig templates for Cirrus's differential suite.
//
// It reads JSON lines {"template": "...", "data": {...}} on stdin and writes one JSON line
// {"ok": bool, "output": "...", "error": "..."} per input, so one process serves the whole corpus.
// The function map is step's: sprig's TxtFuncMap without env/expandenv, plus `fail`.
package main

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"text/template"

	"github.com/Masterminds/sprig"
	"go.step.sm/crypto/x509util"
)

type request struct {
	Template string      `json:"template"`
	Data     interface{} `json:"data"`
	Step     *stepData   `json:"step"`
}

// stepData asks for step-ca's own template data (x509util.TemplateData with its Go types)
// instead of plain JSON data, so the typed path of Cirrus is compared too.
type stepData struct {
	CommonName string                 `json:"commonName"`
	SANs       []string               `json:"sans"`
	CSR        string                 `json:"csr"`
	Token      map[string]interface{} `json:"token"`
	User       map[string]interface{} `json:"user"`
	Extra      map[string]interface{} `json:"extra"`
}

func (s *stepData) templateData() (interface{}, error) {
	data := x509util.CreateTemplateData(s.CommonName, s.SANs)
	if s.CSR != "" {
		block, _ := pem.Decode([]byte(s.CSR))
		if block == nil {
			return nil, errors.New("bad CSR PEM")
		}
		cr, err := x509.ParseCertificateRequest(block.Bytes)
		if err != nil {
			return nil, err
		}
		data.SetCertificateRequest(cr)
	}
	data.SetToken(s.Token)
	data.SetUserData(s.User)
	for k, v := range s.Extra {
		data.Set(k, v)
	}
	return data, nil
}

type response struct {
	OK     bool   `json:"ok"`
	Output string `json:"output"`
	Error  string `json:"error"`
}

func render(req request) (out string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	var failMessage string
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	funcs["fail"] = func(msg string) (string, error) {
		failMessage = msg
		return "", errors.New(msg)
	}
	tmpl, err := template.New("template").Funcs(funcs).Parse(req.Template)
	if err != nil {
		return "", err
	}
	data := req.Data
	if req.Step != nil {
		if data, err = req.Step.templateData(); err != nil {
			return "", err
		}
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, data); err != nil {
		if failMessage != "" {
			return "", fmt.Errorf("fail: %s", failMessage)
		}
		return "", err
	}
	return buf.String(), nil
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<26)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	for in.Scan() {
		var req request
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			fmt.Fprintln(os.Stderr, "bad request:", err)
			os.Exit(2)
		}
		s, err := render(req)
		resp := response{OK: err == nil, Output: s}
		if err != nil {
			resp.Error = err.Error()
		}
		if err := enc.Encode(resp); err != nil {
			os.Exit(2)
		}
	}
}
