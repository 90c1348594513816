/** Types for parse-prometheus-text-format (the package ships none). */
declare module 'parse-prometheus-text-format' {
  interface Family {
    name: string;
    help: string;
    type: string;
    metrics: ({ value: string; labels?: Record<string, string> } | { buckets?: Record<string, string>; quantiles?: Record<string, string>; count: string; sum: string; labels?: Record<string, string> })[];
  }
  export default function parsePrometheusTextFormat(text: string): Family[];
}
