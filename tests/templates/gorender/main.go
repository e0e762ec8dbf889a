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
	"github.com/smallstep/certificates/authority/provisioner"
	"go.step.sm/crypto/sshutil"
	"go.step.sm/crypto/x509util"
)

type request struct {
	Template string      `json:"template"`
	Data     interface{} `json:"data"`
	Step     *stepData   `json:"step"`
	SSH      *sshData    `json:"ssh"`
}

// marshalUser is the request's templateData as step-ca receives it: absent stays absent (nil),
// which step-ca tells apart from an empty object.
func marshalUser(user map[string]interface{}) ([]byte, error) {
	if user == nil {
		return nil, nil
	}
	return json.Marshal(user)
}

// webhookData is what x509util.TemplateData and sshutil.TemplateData share.
type webhookData interface {
	SetWebhook(webhookName string, data interface{})
}

// setWebhooks adds each ENRICHING webhook's answer under .Webhooks.NAME, as step-ca does.
func setWebhooks(data webhookData, answers map[string]interface{}) {
	for name, answer := range answers {
		data.SetWebhook(name, answer)
	}
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
	Webhooks   map[string]interface{} `json:"webhooks"`
}

func (s *stepData) templateData() (interface{}, error) {
	// As step-ca's provisioners build it: the names and the token first, then the provisioner's
	// templateData merged over them by step-ca's own provisioner.TemplateOptions, then the
	// request's templateData (only when the request has one) and the CSR, as WithTemplate does.
	data := x509util.CreateTemplateData(s.CommonName, s.SANs)
	data.SetToken(s.Token)
	extra, err := json.Marshal(s.Extra)
	if err != nil {
		return nil, err
	}
	opts := &provisioner.Options{X509: &provisioner.X509Options{Template: "{}", TemplateData: extra}}
	certOptions, err := provisioner.TemplateOptions(opts, data)
	if err != nil {
		return nil, err
	}
	user, err := marshalUser(s.User)
	if err != nil {
		return nil, err
	}
	certOptions.Options(provisioner.SignOptions{TemplateData: user})
	setWebhooks(data, s.Webhooks) // ENRICHING webhooks answer after the options are built
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
	return data, nil
}

// sshData asks for step-ca's SSH template data (sshutil.TemplateData), built as its JWK provisioner
// builds it and merged by step-ca's own provisioner.TemplateSSHOptions.
type sshData struct {
	Type       string                 `json:"type"`
	KeyID      string                 `json:"keyId"`
	Principals []string               `json:"principals"`
	Token      map[string]interface{} `json:"token"`
	User       map[string]interface{} `json:"user"`
	Extra      map[string]interface{} `json:"extra"`
	Webhooks   map[string]interface{} `json:"webhooks"`
}

func (s *sshData) templateData() (interface{}, error) {
	ct, err := sshutil.CertTypeFromString(s.Type)
	if err != nil {
		return nil, err
	}
	data := sshutil.CreateTemplateData(ct, s.KeyID, s.Principals)
	data.SetToken(s.Token)
	extra, err := json.Marshal(s.Extra)
	if err != nil {
		return nil, err
	}
	opts := &provisioner.Options{SSH: &provisioner.SSHOptions{Template: "{}", TemplateData: extra}}
	certOptions, err := provisioner.TemplateSSHOptions(opts, data)
	if err != nil {
		return nil, err
	}
	user, err := marshalUser(s.User)
	if err != nil {
		return nil, err
	}
	certOptions.Options(provisioner.SignSSHOptions{TemplateData: user})
	setWebhooks(data, s.Webhooks)
	data.SetCertificateRequest(sshutil.CertificateRequest{Type: s.Type, KeyID: s.KeyID, Principals: s.Principals})
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
	if req.SSH != nil {
		if data, err = req.SSH.templateData(); err != nil {
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
