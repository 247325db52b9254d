// The Python module. `march` and `march_composite` take the structures `MarchParams` and
// `CompositeParams` of render/grid.py and read their fields by name, here and only here, into the
// structs of grid_kernels.h (tensors detached and made contiguous, which the kernels index).
#include <torch/extension.h>

#include "grid_kernels.h"

namespace py = pybind11;

static at::Tensor tensor_field(const py::handle& obj, const char* name) {
  return obj.attr(name).cast<at::Tensor>().detach().contiguous();
}

static MarchInputs march_inputs(const py::handle& p) {
  const bool contract = p.attr("contract").cast<bool>();
  return MarchInputs{
      tensor_field(p, "origins"),  tensor_field(p, "directions"), tensor_field(p, "t_min"),
      tensor_field(p, "t_max"),    tensor_field(p, "step"),       tensor_field(p, "jitter"),
      tensor_field(p, "occupancy"), p.attr("use_mask").cast<bool>(), tensor_field(p, "lo"),
      tensor_field(p, "hi"),       p.attr("max_samples").cast<int64_t>(),
      contract,
      contract ? tensor_field(p, "center") : at::zeros({3}, at::kFloat),
      p.attr("radius").cast<double>(), p.attr("bg_len").cast<double>(),
  };
}

static CompositeInputs composite_inputs(const py::handle& c) {
  return CompositeInputs{
      tensor_field(c, "density"),
      c.attr("shift").cast<double>(),
      c.attr("sigma_scale").cast<double>(),
      c.attr("delta").cast<double>(),
      c.attr("weight_threshold").cast<double>(),
      c.attr("stop_transmittance").cast<double>(),
  };
}

static std::vector<at::Tensor> march_py(const py::object& params) {
  return march(march_inputs(params));
}

static std::vector<at::Tensor> march_composite_py(const py::object& params,
                                                  const py::object& composite) {
  return march_composite(march_inputs(params), composite_inputs(composite));
}

// torch::wrap_pybind_function: C++ errors (TORCH_CHECK) reach Python as RuntimeError.
PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("trilinear_forward", torch::wrap_pybind_function(trilinear_forward), py::arg("grid"),
        py::arg("coords"));
  m.def("trilinear_backward", torch::wrap_pybind_function(trilinear_backward),
        py::arg("grad_out"), py::arg("coords"), py::arg("size"));
  m.def("trilinear_backward_coords", torch::wrap_pybind_function(trilinear_backward_coords),
        py::arg("grad_out"), py::arg("grid"), py::arg("coords"));
  m.def("planes_forward", torch::wrap_pybind_function(planes_forward), py::arg("planes"),
        py::arg("uv"));
  m.def("planes_backward", torch::wrap_pybind_function(planes_backward), py::arg("grad_out"),
        py::arg("planes"), py::arg("uv"), py::arg("need_uv"));
  m.def("march", torch::wrap_pybind_function(march_py), py::arg("params"));
  m.def("march_composite", torch::wrap_pybind_function(march_composite_py), py::arg("params"),
        py::arg("composite"));
}
