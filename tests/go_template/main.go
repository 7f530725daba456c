// Renders an Ollama TEMPLATE with Go's text/template, as Ollama does: the data has .Messages (Role, Content)
// and .System. Reads {"template": ..., "messages": [...]} as JSON on stdin, writes the rendering to stdout.
package main

import (
	"encoding/json"
	"os"
	"text/template"
)

type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type Input struct {
	Template string    `json:"template"`
	Messages []Message `json:"messages"`
}

func main() {
	var in Input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		panic(err)
	}
	tmpl := template.Must(template.New("ollama").Parse(in.Template))
	system := ""
	for _, m := range in.Messages {
		if m.Role == "system" {
			system = m.Content
		}
	}
	data := map[string]any{"Messages": in.Messages, "System": system}
	if err := tmpl.Execute(os.Stdout, data); err != nil {
		panic(err)
	}
}
