//! `quantile_cont(value, p)` as DuckDB defines it, exactly: DataFusion's own
//! `percentile_cont` (which it also names `quantile_cont`) rounds the interpolation weight
//! down to a millionth, so its quantiles may differ from DuckDB's in the seventh digit of
//! the gap between two values. Registered under the same name, the statistics' SQL reads
//! the same on both engines and gives the same numbers (`tdb_domain::restitution`).
//!
//! As in DuckDB, the second argument may be a list of fractions: `quantile_cont(value,
//! [0.1, 0.5, 0.9])` gives the list of those quantiles from one sort of the group's values,
//! where one call per quantile would copy and sort them once each.

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, ListArray, RecordBatch,
};
use datafusion::arrow::buffer::{OffsetBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type, Schema};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, EmitTo, GroupsAccumulator,
    Signature, Volatility,
};
use std::sync::Arc;

/// The exact `quantile_cont` aggregate.
pub fn quantile_cont() -> AggregateUDF {
    AggregateUDF::new_from_impl(QuantileCont {
        signature: Signature::any(2, Volatility::Immutable),
    })
}

fn float_list() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct QuantileCont {
    signature: Signature,
}

impl AggregateUDFImpl for QuantileCont {
    fn name(&self) -> &str {
        "quantile_cont"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match (&args[0], &args[1]) {
            (DataType::Float64, DataType::Float64) => Ok(DataType::Float64),
            (DataType::Float64, DataType::List(field))
                if matches!(field.data_type(), DataType::Float64 | DataType::Null) =>
            {
                Ok(float_list())
            }
            _ => {
                plan_err!("quantile_cont takes a DOUBLE and a constant fraction or a list of them")
            }
        }
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[values]", args.name),
            DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))),
            true,
        ))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let (p, list) = fractions(&args)?;
        Ok(Box::new(Values {
            p,
            list,
            values: Vec::new(),
        }))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let (p, list) = fractions(&args)?;
        Ok(Box::new(GroupValues {
            p,
            list,
            groups: Vec::new(),
        }))
    }
}

/// The fractions asked (a constant or a list of them), and whether as a list.
fn fractions(args: &AccumulatorArgs) -> Result<(Vec<f64>, bool)> {
    // A constant: it evaluates without any row.
    let empty = RecordBatch::new_empty(Arc::new(Schema::empty()));
    let fractions = args
        .exprs
        .get(1)
        .and_then(|e| e.evaluate(&empty).ok())
        .and_then(|v| match v {
            ColumnarValue::Scalar(ScalarValue::Float64(Some(p))) => Some((vec![p], false)),
            ColumnarValue::Scalar(ScalarValue::List(list)) if list.len() == 1 => {
                let values = list.value(0);
                let values = values.as_primitive_opt::<Float64Type>()?;
                (values.null_count() == 0).then(|| (values.values().to_vec(), true))
            }
            _ => None,
        });
    match fractions {
        Some((p, list)) if p.iter().all(|p| (0.0..=1.0).contains(p)) => Ok((p, list)),
        _ => plan_err!(
            "quantile_cont's second argument is a constant between 0 and 1, or a list of them"
        ),
    }
}

/// The quantiles of sorted values, as the aggregate answers them: a DOUBLE, or a list (none
/// for no value).
fn answer(sorted: &[f64], p: &[f64], list: bool) -> Vec<Option<f64>> {
    if list && sorted.is_empty() {
        return Vec::new();
    }
    p.iter()
        .map(|p| tdb_domain::restitution::quantile_cont(sorted, *p))
        .collect()
}

fn list_of(lists: Vec<Option<Vec<Option<f64>>>>) -> ArrayRef {
    let mut offsets = vec![0i32];
    let mut values = Vec::new();
    let mut valid = Vec::with_capacity(lists.len());
    for list in lists {
        valid.push(list.is_some());
        values.extend(list.unwrap_or_default());
        offsets.push(values.len() as i32);
    }
    Arc::new(ListArray::new(
        Arc::new(Field::new_list_field(DataType::Float64, true)),
        OffsetBuffer::new(ScalarBuffer::from(offsets)),
        Arc::new(Float64Array::from(values)),
        Some(valid.into()),
    ))
}

/// Every group's values, until the end: one accumulator for all the groups of a batch,
/// where DataFusion would otherwise call one per group with its slice of the batch.
#[derive(Debug)]
struct GroupValues {
    p: Vec<f64>,
    list: bool,
    groups: Vec<Vec<f64>>,
}

impl GroupsAccumulator for GroupValues {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize_with(total_num_groups, Vec::new);
        let values = values[0].as_primitive::<Float64Type>();
        for (row, group) in group_indices.iter().enumerate() {
            let kept = opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row));
            if kept && values.is_valid(row) {
                self.groups[*group].push(values.value(row));
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let groups = emit_to.take_needed(&mut self.groups);
        if self.list {
            Ok(list_of(
                groups
                    .into_iter()
                    .map(|mut values| {
                        values.sort_unstable_by(f64::total_cmp);
                        (!values.is_empty()).then(|| answer(&values, &self.p, true))
                    })
                    .collect(),
            ))
        } else {
            Ok(Arc::new(Float64Array::from_iter(groups.into_iter().map(
                |mut values| {
                    values.sort_unstable_by(f64::total_cmp);
                    answer(&values, &self.p, false)[0]
                },
            ))))
        }
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let groups = emit_to.take_needed(&mut self.groups);
        Ok(vec![list_of(
            groups
                .into_iter()
                .map(|values| Some(values.into_iter().map(Some).collect()))
                .collect(),
        )])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups.resize_with(total_num_groups, Vec::new);
        let lists = values[0].as_list::<i32>();
        for (row, group) in group_indices.iter().enumerate() {
            if lists.is_valid(row) {
                let list = lists.value(row);
                let list = list.as_primitive::<Float64Type>();
                self.groups[*group].extend(list.iter().flatten());
            }
        }
        Ok(())
    }

    /// Each row as a state of its own: a list of its value (none when filtered out or null).
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let values = values[0].as_primitive::<Float64Type>();
        Ok(vec![list_of(
            (0..values.len())
                .map(|row| {
                    let kept = opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row));
                    Some(if kept && values.is_valid(row) {
                        vec![Some(values.value(row))]
                    } else {
                        Vec::new()
                    })
                })
                .collect(),
        )])
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.groups.capacity() * std::mem::size_of::<Vec<f64>>()
            + self
                .groups
                .iter()
                .map(|g| g.capacity() * std::mem::size_of::<f64>())
                .sum::<usize>()
    }
}

/// Every value of the group, until the end.
#[derive(Debug)]
struct Values {
    /// The fractions asked.
    p: Vec<f64>,
    /// Whether they were asked as a list (and are answered as one).
    list: bool,
    values: Vec<f64>,
}

impl Accumulator for Values {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let values = values[0].as_primitive::<Float64Type>();
        if values.null_count() == 0 {
            self.values.extend_from_slice(values.values());
        } else {
            self.values.extend(values.iter().flatten());
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let lists = states[0].as_list::<i32>();
        for i in 0..lists.len() {
            if !lists.is_null(i) {
                self.update_batch(&[lists.value(i)])?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let values = std::mem::take(&mut self.values);
        let list = ListArray::new(
            Arc::new(Field::new_list_field(DataType::Float64, true)),
            OffsetBuffer::new(ScalarBuffer::from(vec![0, values.len() as i32])),
            Arc::new(Float64Array::from(values)),
            None,
        );
        Ok(vec![ScalarValue::List(Arc::new(list))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.values.sort_unstable_by(f64::total_cmp);
        let quantiles = answer(&self.values, &self.p, self.list);
        if !self.list {
            return Ok(ScalarValue::Float64(quantiles[0]));
        }
        let list = list_of(vec![(!self.values.is_empty()).then_some(quantiles)]);
        ScalarValue::try_from_array(&list, 0)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.values.capacity() * std::mem::size_of::<f64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accumulator(list: bool) -> GroupValues {
        GroupValues {
            p: vec![0.25, 0.5],
            list,
            groups: Vec::new(),
        }
    }

    fn floats(values: &[Option<f64>]) -> ArrayRef {
        Arc::new(Float64Array::from(values.to_vec()))
    }

    #[test]
    fn groups_take_their_rows_skip_nulls_and_filtered_rows_and_merge_their_states() {
        // Two groups; row 2 is null, row 3 is filtered out.
        let values = floats(&[
            Some(4.0),
            Some(10.0),
            None,
            Some(99.0),
            Some(1.0),
            Some(20.0),
        ]);
        let groups = [0, 1, 0, 0, 0, 1];
        let filter = BooleanArray::from(vec![true, true, true, false, true, true]);
        let mut direct = accumulator(true);
        direct
            .update_batch(std::slice::from_ref(&values), &groups, Some(&filter), 2)
            .unwrap();
        // The same rows through states: per row (convert_to_state), then merged.
        let mut merged = accumulator(true);
        let states = direct.convert_to_state(&[values], Some(&filter)).unwrap();
        merged.merge_batch(&states, &groups, 2).unwrap();
        for mut acc in [direct, merged] {
            let out = acc.evaluate(EmitTo::All).unwrap();
            let lists = out.as_list::<i32>();
            let group = |g: usize| -> Vec<f64> {
                lists
                    .value(g)
                    .as_primitive::<Float64Type>()
                    .values()
                    .to_vec()
            };
            // Group 0 holds 1 and 4: quartile 1.75, median 2.5. Group 1: 10 and 20.
            assert_eq!(group(0), [1.75, 2.5]);
            assert_eq!(group(1), [12.5, 15.0]);
        }
    }

    #[test]
    fn a_group_without_values_has_no_list_and_no_quantile() {
        let mut list = accumulator(true);
        list.update_batch(&[floats(&[None])], &[1], None, 2)
            .unwrap();
        assert_eq!(list.evaluate(EmitTo::All).unwrap().null_count(), 2);
        let mut single = accumulator(false);
        single
            .update_batch(&[floats(&[Some(3.0)])], &[0], None, 2)
            .unwrap();
        let out = single.evaluate(EmitTo::All).unwrap();
        let out = out.as_primitive::<Float64Type>();
        assert_eq!((out.value(0), out.is_null(1)), (3.0, true));
    }
}
